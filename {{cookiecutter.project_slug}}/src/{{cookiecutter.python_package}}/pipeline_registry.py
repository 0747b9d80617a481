"""Project pipelines."""

from kedro.pipeline import Pipeline

from {{ cookiecutter.python_package }}_deploy import (
    check_tagging,
    dag_pipelines,
    project_pipelines,
)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines: ``__default__`` runs every one of
    ``pipelines/``.

    The deployment layer adds the pipelines its DAGs run for themselves, and stops
    any ``kedro run`` whose tags cannot make an Airflow DAG.
    """
    pipelines = project_pipelines()  # Kedro's find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines.update(dag_pipelines())
    check_tagging(pipelines)
    return pipelines
