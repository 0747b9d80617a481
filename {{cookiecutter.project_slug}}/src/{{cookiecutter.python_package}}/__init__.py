"""Spaceflights pipelines that run on Airflow, one Kubernetes pod per task."""
