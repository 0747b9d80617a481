"""The local deployment end to end: a real Airflow runs whole DAGs, each task a
`kedro run` process, tracked by a real MLflow server (slow).

One baked project serves the module, in order: four DAG runs at once in a local
scheduler (two of `__default__` and two of `data_science`, triggered with parameters
of their own, `max_active_runs: 2`), each on its own data and in its own MLflow run;
then, through `airflow dags test`, a run where a task fails once and another always
fails, and one given a parameter the project has not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
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
OTHER = {"model_options.test_size": 0.2}
SIZES = (TRIGGERED["model_options.test_size"], OTHER["model_options.test_size"])  # each DAG's two runs
DAGS = {"spaceflights-__default__-local": "__default__", "spaceflights-data_science-local": "data_science"}
SHARED_TABLE = "data/03_primary/model_input_table.parquet"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("local"))
    # Ports of its own, so that other tests' servers and this one's never meet.
    (project / "conf/local/deploy.yml").write_text(
        f"local_mlflow_port: {free_port()}\nlocal_airflow_port: {free_port()}\n"
    )
    (project / "conf/local/airflow.yml").write_text("default:\n  max_active_runs: 2\n")
    run("uv", "sync", "--locked", cwd=project)
    # What data_science takes in, published where every run reads it.
    run(".venv/bin/kedro", "run", "--pipelines", "data_processing", cwd=project, env=clean_env(KEDRO_MLFLOW="off"))
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
    """Four runs at once: each DAG triggered with TRIGGERED, then with OTHER; the
    table data_science reads in its usual place is left as it was."""
    shared = project / SHARED_TABLE
    before = (hashlib.sha256(shared.read_bytes()).hexdigest(), shared.stat().st_mtime_ns)
    confs = [f"--conf={json.dumps(conf)}" for conf in (TRIGGERED, OTHER)]
    result = deploy(project, "--pipelines", ",".join(DAGS.values()), *confs)
    assert (hashlib.sha256(shared.read_bytes()).hexdigest(), shared.stat().st_mtime_ns) == before, (
        "no run writes what the pipeline takes in"
    )
    return result


def reports(project: Path) -> list[dict]:
    return json.loads((project / "build/local/deploy.json").read_text())["runs"]


def when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def test_the_whole_dag_runs_with_one_mlflow_run_holding_everything(project, default_run):
    output = default_run.stdout + default_run.stderr
    assert default_run.returncode == 0, output
    dag_run = reports(project)[0]  # __default__, triggered with TRIGGERED
    assert (dag_run["dag_id"], dag_run["state"]) == ("spaceflights-__default__-local", "success")
    tasks = {task["task_id"]: task["state"] for task in dag_run["tasks"]}
    assert tasks == dict.fromkeys(["start_mlflow_run", *KEDRO_TASKS, "end_mlflow_run"], "success")

    store = mlflow_store(project)
    (tracked,) = runs_of(store, dag_run["run_id"])  # one run, and only the DAG run's
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

    # The summary says the same, with each task's duration and the run's address.
    assert dag_run["mlflow"]["run_id"] == tracked["run_id"]
    assert f"MLflow run {tracked['run_id']}: FINISHED" in output
    assert all(task["seconds"] > 0 for task in dag_run["tasks"])
    for task in KEDRO_TASKS:
        assert f"    [1] {task} done in" in output  # progress, as the run goes
    assert "Stopped the MLflow server" in output


def test_the_runs_run_at_the_same_time(project, default_run):
    output = default_run.stdout + default_run.stderr
    runs = reports(project)
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


def test_each_run_has_its_own_mlflow_run_with_its_parameters_metrics_and_model(project, default_run):
    store = mlflow_store(project)
    assert len(store["runs"]) == len(reports(project))
    for dag_run, size in zip(reports(project), SIZES * len(DAGS), strict=True):
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


def test_each_run_s_data_is_its_own(project, default_run):
    store = mlflow_store(project)
    folders = {}
    for dag_run in reports(project):
        (tracked,) = runs_of(store, dag_run["run_id"])
        folder = project / tracked["tags"]["data_folder"]
        assert folder.parent == project / "data/runs" / dag_run["dag_id"]
        folders[str(folder)] = dag_run
    assert len(folders) == len(reports(project)), "a folder per run"

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
