"""Clean the raw company and shuttle data and join it into the model input table."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
