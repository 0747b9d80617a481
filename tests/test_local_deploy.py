"""The local deployment end to end: a real Airflow runs the whole DAG, each task a
`kedro run` process, tracked by a real MLflow server (slow).

One baked project serves the module, in order: the default deployment, triggered
with parameters of its own, then one where a task fails once and another always
fails, then one given a parameter the project has not.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import free_port
from conftest import bake, clean_env, run

pytestmark = pytest.mark.slow

PROBES = Path(__file__).parent / "probes"
KEDRO_TASKS = ["companies", "shuttles", "split", "train_model_node", "evaluate_model_node"]
EXPECTED_METRICS = {"r2_score", "mae", "max_error"}
# The parameters the default run is triggered with, over conf's (airflow dags test --conf).
TRIGGERED = {"model_options.test_size": 0.3, "model_options.features": ["engines", "crew"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("local"))
    # Ports of its own, so that other tests' servers and this one's never meet.
    (project / "conf/local/deploy.yml").write_text(
        f"local_mlflow_port: {free_port()}\nlocal_airflow_port: {free_port()}\n"
    )
    return project


def deploy(project: Path, *args: str) -> subprocess.CompletedProcess:
    """`nox -s deploy` with the target the project's deploy.yml names (local)."""
    return subprocess.run(
        [sys.executable, "-m", "nox", "--non-interactive", "-s", "deploy", "--", *args],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def report(project: Path) -> dict:
    """The one DAG run the local deployment reports, as written to build/local/deploy.json."""
    (dag_run,) = json.loads((project / "build/local/deploy.json").read_text())["runs"]
    return dag_run


def mlflow_store(project: Path, pipeline: str = "__default__") -> dict:
    """What the local MLflow server's store holds, read with MLflow itself (the
    server is stopped by then), and the parameters ``pipeline`` uses."""
    store = f"sqlite:///{project / 'build/local/mlflow/mlflow.db'}"
    out = project / "build/store.json"
    env = clean_env(MLFLOW_TRACKING_URI=store)
    run(
        project / ".venv/bin/python",
        PROBES / "mlflow_store.py",
        out,
        store,
        "spaceflights",
        pipeline,
        cwd=project,
        env=env,
    )
    return json.loads(out.read_text())


def runs_of(store: dict, airflow_run_id: str) -> list[dict]:
    return [run_ for run_ in store["runs"] if run_["tags"].get("airflow_run_id") == airflow_run_id]


def flattened(parameters: dict, prefix: str = "") -> dict[str, str]:
    """``parameters`` as kedro-mlflow logs them (mlflow.yml: dict_params.flatten)."""
    flat = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            flat |= flattened(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@contextlib.contextmanager
def replaced(path: Path, old: str, new: str) -> Iterator[None]:
    before = path.read_text()
    assert old in before
    path.write_text(before.replace(old, new))
    try:
        yield
    finally:
        path.write_text(before)


@pytest.fixture(scope="module")
def default_run(project) -> subprocess.CompletedProcess:
    return deploy(project, "--conf", json.dumps(TRIGGERED))


def test_the_whole_dag_runs_with_one_mlflow_run_holding_everything(project, default_run):
    output = default_run.stdout + default_run.stderr
    assert default_run.returncode == 0, output
    dag_run = report(project)
    assert dag_run["state"] == "success"
    tasks = {task["task_id"]: task["state"] for task in dag_run["tasks"]}
    assert tasks == dict.fromkeys(["start_mlflow_run", *KEDRO_TASKS, "end_mlflow_run"], "success")

    store = mlflow_store(project)
    (tracked,) = store["runs"]  # one run, and only the DAG run's
    assert tracked["tags"]["airflow_run_id"] == dag_run["run_id"]
    assert tracked["tags"]["airflow_dag_id"] == "spaceflights-__default__-local"
    assert tracked["status"] == "FINISHED" and tracked["end_time"]
    assert set(tracked["metrics"]) == EXPECTED_METRICS
    assert tracked["metrics"]["r2_score"] > 0.3
    expected = flattened(store["parameters"]) | {key: str(value) for key, value in TRIGGERED.items()}
    assert expected and tracked["params"].items() >= expected.items(), "the run's own parameters"
    assert tracked["models"] == ["regressor"]
    # The run's data is in its own folder, which its MLflow run names; none outside it.
    folder = project / tracked["tags"]["data_folder"]
    assert folder.parent == project / "data/runs/spaceflights-__default__-local"
    assert (folder / "08_reporting/metrics.json").exists() and any((folder / "06_models").rglob("*.pickle"))
    assert not (project / "data/03_primary/model_input_table.parquet").exists()

    # The summary says the same, with each task's duration and the run's address.
    assert dag_run["mlflow"]["run_id"] == tracked["run_id"]
    assert f"MLflow run {tracked['run_id']}: FINISHED" in output
    assert all(task["seconds"] > 0 for task in dag_run["tasks"])
    for task in KEDRO_TASKS:
        assert f"    {task} done in" in output  # progress, as the run goes
    assert "Stopped the MLflow server" in output


def test_a_retried_task_and_a_failing_one_leave_one_run_failed(project, default_run, tmp_path):
    """Training fails once and succeeds on its retry; evaluation always fails: the DAG
    run fails, its teardown still ends the one MLflow run, as FAILED."""
    marker = tmp_path / "failed-once"
    nodes = project / "src/spaceflights/pipelines/data_science/nodes.py"
    train = '    """Fit a linear regression of the price on the features."""\n'
    fail_once = (
        f"{train}    from pathlib import Path\n    marker = Path({str(marker)!r})\n"
        "    if not marker.exists():\n        marker.touch()\n"
        '        raise RuntimeError("the first try fails")\n'
    )
    evaluate = '    """Score the model on the test set: R², mean absolute error, max error."""\n'
    # The last node of the `split` group fails once too: its retry skips the first.
    split_marker = tmp_path / "split-failed-once"
    split = '    """Split the features and the price into training and test sets."""\n'
    split_fails_once = fail_once.replace(train, split).replace(str(marker), str(split_marker))
    with (
        replaced(nodes, train, fail_once),
        replaced(nodes, split, split_fails_once),
        replaced(nodes, evaluate, f'{evaluate}    raise RuntimeError("evaluation is broken")\n'),
    ):
        result = deploy(project)  # each DAG run on its own data: the whole pipeline
    assert result.returncode != 0
    log = (project / "build/local/dag-run.log").read_text()
    assert marker.exists() and "the first try fails" in log and "evaluation is broken" in log
    dag_run = report(project)
    assert dag_run["state"] == "failed"
    states = {task["task_id"]: task["state"] for task in dag_run["tasks"]}
    assert states["train_model_node"] == "success"  # on its retry
    assert states["evaluate_model_node"] == "failed"
    assert states["end_mlflow_run"] == "success"  # the teardown ran, and did not hide the failure

    (tracked,) = runs_of(mlflow_store(project), dag_run["run_id"])
    assert tracked["status"] == "FAILED" and tracked["end_time"]
    # The split group's retry ran its second node alone, on the table its first try wrote.
    assert states["split"] == "success" and split_marker.exists()
    assert "Skipping 1 nodes with existing outputs: create_model_input_table_node" in log
    table = project / tracked["tags"]["data_folder"] / "03_primary/model_input_table.parquet"
    assert table.stat().st_mtime <= split_marker.stat().st_mtime, "written by the first try, not again"


def test_a_run_given_an_unknown_parameter_stops_in_its_first_tasks_naming_it(project, default_run):
    written_before = set((project / "data/runs").rglob("*.*"))
    result = deploy(project, "--conf", json.dumps({"model_options.tst_size": 0.3}))

    assert result.returncode != 0
    log = (project / "build/local/dag-run.log").read_text()
    assert "`model_options.tst_size` is not a parameter of this project" in log
    dag_run = report(project)
    states = {task["task_id"]: task["state"] for task in dag_run["tasks"]}
    assert (states["companies"], states["shuttles"], states["split"]) == ("failed", "failed", "upstream_failed")
    assert set((project / "data/runs").rglob("*.*")) == written_before, "no node ran"
