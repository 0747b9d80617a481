"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from .airflow_hooks import check_tagging


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline in ``pipelines/``; ``__default__`` runs them all.

    A tagging that cannot make an Airflow DAG stops here, on every ``kedro run``.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    check_tagging(pipelines)
    return pipelines
