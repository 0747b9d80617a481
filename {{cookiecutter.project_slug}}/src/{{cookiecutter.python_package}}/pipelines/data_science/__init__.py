"""Split the model input table, train a price model and evaluate it."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
