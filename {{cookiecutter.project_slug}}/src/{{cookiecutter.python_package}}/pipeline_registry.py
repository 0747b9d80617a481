"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from .airflow_hooks import check_tagging

# Pipelines that only the Airflow DAG runs, never part of `__default__`.
DAG_ONLY = ("mlflow_start",)


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline in ``pipelines/``; ``__default__`` runs them all but
    the DAG's own (see ``DAG_ONLY``).

    A tagging that cannot make an Airflow DAG stops here, on every ``kedro run``.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in DAG_ONLY),
        Pipeline([]),
    )
    check_tagging(pipelines)
    return pipelines
