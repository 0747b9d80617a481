"""A whole `kedro run` of the project, on the sample data, in a copy of the project."""

import json
import shutil
from pathlib import Path

import pytest
{%- if cookiecutter.mlflow_tracking == "yes" %}
from kedro.framework.project import pipelines
{%- endif %}
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT = Path(__file__).parents[1]


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project without its data outputs, so the run writes only in tmp_path
    (its MLflow runs too)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    shutil.copy(PROJECT / "pyproject.toml", tmp_path)
    for folder in ("conf", "src"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    shutil.copytree(PROJECT / "data" / "01_raw", tmp_path / "data" / "01_raw")
    return tmp_path


def test_default_pipeline_runs_on_the_sample_data(project_copy):
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy) as session:
        session.run()

    metrics = json.loads((project_copy / "data/08_reporting/metrics.json").read_text())
    assert set(metrics) == {"r2_score", "mae", "max_error"}
    assert metrics["r2_score"] > 0.2
    assert list((project_copy / "data/06_models/regressor.pickle").iterdir())
{%- if cookiecutter.mlflow_tracking == "yes" %}


def test_a_run_of_the_deployments_own_pipeline_finds_it(monkeypatch):
    """`kedro run --pipelines start_mlflow_run`, a DAG's first task in pod mode: Kedro
    looks for the pipelines a run names in pipelines/, where this one is not."""
    monkeypatch.chdir(PROJECT)
    bootstrap_project(PROJECT)
    pipelines.set_requested(["start_mlflow_run"])  # as KedroSession.run does
    try:
        nodes = [node.name for node in pipelines["start_mlflow_run"].nodes]
    finally:
        pipelines.set_requested(None)
    assert nodes == ["start_mlflow_run_node"]
{%- endif %}
