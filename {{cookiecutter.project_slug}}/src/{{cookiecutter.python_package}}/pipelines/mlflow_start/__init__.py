"""Start the MLflow run of an Airflow DAG run, in a pod (`mlflow_start: pod`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
