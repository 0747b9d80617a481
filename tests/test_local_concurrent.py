"""DAG runs at the same time on one machine, each on its own data (slow).

A real local Airflow (API server, scheduler with the LocalExecutor, DAG processor)
runs four DAG runs at once: two of `__default__` and two of `data_science`, triggered
with two `test_size` values (`max_active_runs: 2`), all tracked by one real MLflow
server. `data_science` reads the model input table a laptop `kedro run` of
`data_processing` wrote in its usual place. Each run must end with its own MLflow run
holding its own parameters, metrics and model, and data on disk that only it wrote.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from components import free_port
from conftest import bake, clean_env, run
from test_local_deploy import EXPECTED_METRICS, PROBES, deploy, mlflow_store, runs_of

pytestmark = pytest.mark.slow

SIZES = (0.3, 0.2)  # the test_size of each DAG's two runs
DAGS = {"spaceflights-__default__-local": "__default__", "spaceflights-data_science-local": "data_science"}
SHARED_TABLE = "data/03_primary/model_input_table.parquet"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("concurrent"))
    (project / "conf/local/deploy.yml").write_text(
        f"local_mlflow_port: {free_port()}\nlocal_airflow_port: {free_port()}\n"
    )
    (project / "conf/local/airflow.yml").write_text("default:\n  max_active_runs: 2\n")
    run("uv", "sync", "--locked", cwd=project)
    # What data_science takes in, published where every run reads it.
    run(".venv/bin/kedro", "run", "--pipelines", "data_processing", cwd=project, env=clean_env(KEDRO_MLFLOW="off"))
    return project


@pytest.fixture(scope="module")
def deployed(project) -> tuple[dict, str]:
    """The four runs as deploy.json reports them, and the deployment's output."""
    shared = project / SHARED_TABLE
    before = (hashlib.sha256(shared.read_bytes()).hexdigest(), shared.stat().st_mtime_ns)
    confs = [json.dumps({"model_options.test_size": size}) for size in SIZES]
    result = deploy(project, "--pipelines", "__default__,data_science", *(f"--conf={conf}" for conf in confs))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (hashlib.sha256(shared.read_bytes()).hexdigest(), shared.stat().st_mtime_ns) == before, (
        "no run writes what the pipeline takes in"
    )
    return json.loads((project / "build/local/deploy.json").read_text()), output


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def test_the_runs_run_at_the_same_time(deployed):
    report, output = deployed
    runs = report["runs"]
    assert [(dag_run["dag_id"], dag_run["state"]) for dag_run in runs] == [
        (dag_id, "success") for dag_id in DAGS for _ in SIZES
    ]
    assert "4 DAG runs at once, in a local Airflow scheduler" in output
    assert "Stopped the local Airflow" in output
    # Every run had begun before any ended: none waited for another.
    starts = [min(when(task["start_date"]) for task in dag_run["tasks"]) for dag_run in runs]
    ends = [max(when(task["end_date"]) for task in dag_run["tasks"]) for dag_run in runs]
    assert max(starts) < min(ends), list(zip(starts, ends, strict=True))
    for number in range(1, 5):
        assert f"    [{number}] evaluate_model_node done in" in output  # progress, as it goes


def test_each_run_has_its_own_mlflow_run_with_its_parameters_metrics_and_model(project, deployed):
    report, _ = deployed
    store = mlflow_store(project)
    assert len(store["runs"]) == len(report["runs"])
    for dag_run, size in zip(report["runs"], SIZES * len(DAGS), strict=True):
        (tracked,) = runs_of(store, dag_run["run_id"])
        assert tracked["tags"]["airflow_dag_id"] == dag_run["dag_id"]
        assert tracked["status"] == "FINISHED"
        assert tracked["params"]["model_options.test_size"] == str(size)
        assert set(tracked["metrics"]) == EXPECTED_METRICS
        assert tracked["models"] == ["regressor"]
        assert dag_run["mlflow"]["run_id"] == tracked["run_id"]
        # What the run reported on disk is what its MLflow run holds.
        metrics = json.loads((project / tracked["tags"]["data_folder"] / "08_reporting/metrics.json").read_text())
        assert metrics == pytest.approx(tracked["metrics"])


def test_each_run_s_data_is_its_own(project, deployed):
    report, _ = deployed
    store = mlflow_store(project)
    folders = {}
    for dag_run in report["runs"]:
        (tracked,) = runs_of(store, dag_run["run_id"])
        folder = project / tracked["tags"]["data_folder"]
        assert folder.parent == project / "data/runs" / dag_run["dag_id"]
        folders[str(folder)] = dag_run
    assert len(folders) == len(report["runs"]), "a folder per run"

    # Each run split the data with its own test_size: nobody else wrote its sets.
    out = project / "build/split_sizes.json"
    run(project / ".venv/bin/python", PROBES / "split_sizes.py", out, *folders, cwd=project)
    sizes = json.loads(out.read_text())
    for (folder, dag_run), size in zip(folders.items(), SIZES * len(DAGS), strict=True):
        rows = sizes[folder]
        assert rows["X_test"] / (rows["X_train"] + rows["X_test"]) == pytest.approx(size, abs=0.01), dag_run

        # One version of the model, the run's own: every task stamps its run_after.
        (version,) = (Path(folder) / "06_models/regressor.pickle").iterdir()
        run_after = datetime.fromisoformat(dag_run["run_id"].removeprefix("manual__")).astimezone(UTC)
        assert version.name == run_after.strftime("%Y-%m-%dT%H.%M.%S.%f")[:-3] + "Z"

        # data_science reads the table from its usual place, and writes no copy.
        written = {path.relative_to(folder).parts[0] for path in Path(folder).rglob("*") if path.is_file()}
        expected = {"05_model_input", "06_models", "08_reporting"}
        if DAGS[dag_run["dag_id"]] == "__default__":
            expected |= {"02_intermediate", "03_primary"}
        assert written == expected, folder
