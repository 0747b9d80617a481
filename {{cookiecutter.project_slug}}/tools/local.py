"""Deploy on this machine: one whole DAG run in a local Airflow, tracked by a local MLflow.

`nox -s deploy -- --target local` runs this. It prepares the project's environment
(.venv) and Airflow's own (from deploy/airflow/uv.lock), starts an MLflow server on
127.0.0.1 unless one answers there, makes an Airflow home (SQLite, no examples),
writes the DAG with the local operator, checks that it imports, runs it once with
`airflow dags test` and sums up. It stops what it started, unless asked to leave
MLflow and the Airflow UI running. Everything lives in build/local/.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType

import requests
import yaml
from dags import PROJECT, package_name, write_dags

LOCAL = PROJECT / "build/local"
AIRFLOW_HOME = LOCAL / "airflow"
AIRFLOW_VENV = LOCAL / "airflow-venv"
AIRFLOW_BIN = AIRFLOW_VENV / "bin"
MLFLOW_STORE = LOCAL / "mlflow"
REPORT = LOCAL / "deploy.json"
STEPS = 6
# nox points these at its own session; the project and Airflow have their own.
NOT_INHERITED = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH")
# Lines of `airflow dags test` that say how the run goes.
TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")
RUN_LINE = re.compile(r"DagRun Finished: dag_id=(\S+), .*run_id=([^,]+), .*state=(\w+)")


class LocalError(Exception):
    """A problem the user can fix: the message says what and how."""


def step(number: int, text: str) -> None:
    print(f"==> [{number}/{STEPS}] {text}", flush=True)


def own_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return env | extra


def airflow_env() -> dict[str, str]:
    return own_env(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(AIRFLOW_HOME / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # A UI on 127.0.0.1 for the one user of this machine: no login.
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )


def run(command: list[str | Path], log: Path | None = None, **kwargs) -> None:
    """Run ``command``; its output goes to the terminal, or to ``log``."""
    command = [str(part) for part in command]
    if log is None:
        result = subprocess.run(command, check=False, **kwargs)
    else:
        with log.open("w") as out:
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
            )
    if result.returncode:
        tail = "".join(log.read_text().splitlines(True)[-20:]) if log else ""
        raise LocalError(
            f"{tail}`{' '.join(command)}` failed ({result.returncode})"
            + (f": see {log}" if log else "")
        )


def airflow_json(*args: str) -> list[dict]:
    """An `airflow ... -o json` answer (Airflow logs to stdout before it)."""
    result = subprocess.run(
        [AIRFLOW_BIN / "airflow", *args, "--output", "json"],
        env=airflow_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def config(name: str, section: str | None = None) -> dict:
    """conf/base/``name`` (its ``section``), with conf/local's over it key by key."""
    merged: dict = {}
    for env in ("base", "local"):
        path = PROJECT / "conf" / env / name
        if path.exists():
            loaded = yaml.safe_load(path.read_text()) or {}
            merged |= (loaded.get(section) or {}) if section else loaded
    return merged


def healthy(uri: str) -> bool:
    try:
        return requests.get(f"{uri}/health", timeout=2).ok
    except requests.RequestException:
        return False


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_mlflow(port: int) -> tuple[str, subprocess.Popen | None]:
    """The MLflow server at 127.0.0.1:``port``: the one running there, or a new one."""
    uri = f"http://127.0.0.1:{port}"
    if healthy(uri):
        print(f"    MLflow already answers at {uri}: using it")
        return uri, None
    if port_taken(port):
        raise LocalError(
            f"127.0.0.1:{port} is taken by something that is not MLflow: set "
            "local_mlflow_port in conf/local/deploy.yml to a free port"
        )
    MLFLOW_STORE.mkdir(parents=True, exist_ok=True)
    log = LOCAL / "mlflow.log"
    server = subprocess.Popen(
        [
            *(PROJECT / ".venv/bin/mlflow", "server", "--host", "127.0.0.1"),
            *("--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{MLFLOW_STORE / 'mlflow.db'}"),
            *("--artifacts-destination", str(MLFLOW_STORE / "artifacts")),
            *("--workers", "1"),  # one user
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        # No pool of background job runners: nothing here asks for them.
        env=own_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        start_new_session=True,  # its workers go with it when it is stopped
    )
    print(f"    starting an MLflow server at {uri} (the first start takes a while)")
    for _ in range(360):
        if healthy(uri):
            print(f"    started (process {server.pid}, log {log})")
            return uri, server
        if server.poll() is not None:
            raise LocalError(f"the MLflow server exited: see {log}")
        time.sleep(0.5)
    stop(server)
    raise LocalError(
        f"the MLflow server did not answer at {uri} in 3 minutes: see {log}"
    )


def stop(process: subprocess.Popen) -> None:
    """Stop ``process`` and its children (its own session), by process id."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def check_imports(dags: list[Path]) -> list[str]:
    """The DAG ids in ``dags``, loaded by Airflow; raise on any import error."""
    probe = (
        "import json, os, sys\n"
        "sys.path.insert(0, os.path.dirname(sys.argv[2]))  # as Airflow's DAG folder\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[2])\n"
        "json.dump({'dags': sorted(bag.dags),"
        " 'errors': {k: str(v) for k, v in bag.import_errors.items()}},"
        " open(sys.argv[1], 'w'))\n"
    )
    out = LOCAL / "imports.json"
    ids = []
    for dag in dags:
        run(
            [AIRFLOW_BIN / "python", "-c", probe, out, dag],
            log=LOCAL / "imports.log",
            env=airflow_env(),
        )
        report = json.loads(out.read_text())
        if report["errors"]:
            raise LocalError(f"{dag} does not import: {report['errors']}")
        ids += report["dags"]
    return ids


def dag_run(dag_id: str) -> tuple[str, str]:
    """Run the DAG once, saying which tasks start and end; return (run id, state)."""
    log = LOCAL / "dag-run.log"
    started = {}
    found = None
    with log.open("w") as out:
        process = subprocess.Popen(
            [AIRFLOW_BIN / "airflow", "dags", "test", dag_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=airflow_env(),
        )
        for line in process.stdout:
            out.write(line)
            if match := TASK_LINE.search(line):
                event, task = match.groups()
                if event == "starting":
                    started[task] = time.monotonic()
                    print(f"    {task} ...", flush=True)
                else:
                    took = time.monotonic() - started.get(task, time.monotonic())
                    print(f"    {task} done in {took:.1f} s", flush=True)
            elif match := RUN_LINE.search(line):
                found = match.group(2), match.group(3)
        process.wait()
    if found is None:
        raise LocalError(
            f"`airflow dags test {dag_id}` did not finish a run: see {log}"
        )
    return found


def seconds(task: dict) -> float | None:
    if not (task.get("start_date") and task.get("end_date")):
        return None
    start, end = (
        datetime.fromisoformat(task[key]) for key in ("start_date", "end_date")
    )
    return (end - start).total_seconds()


def mlflow_run(uri: str, experiment: str, dag_id: str, run_id: str) -> dict | None:
    """The MLflow run of the DAG run, as MLflow's REST API tells it."""
    tracking = mlflow_runs().Tracking(uri)
    experiment_id = tracking.experiment_id(experiment, create=False)
    found = experiment_id and tracking.find_run(experiment_id, dag_id, run_id)
    if not found:
        return None
    info, data = found["info"], found["data"]
    return {
        "run_id": info["run_id"],
        "status": info["status"],
        "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
        "params": {p["key"]: p["value"] for p in data.get("params", [])},
        "url": f"{uri}/#/experiments/{experiment_id}/runs/{info['run_id']}",
    }


def mlflow_runs() -> ModuleType:
    """The project's MLflow helper (it needs no Kedro), which the DAG uses too."""
    sys.path.insert(0, str(PROJECT / "src"))
    return importlib.import_module(f"{package_name()}.mlflow_runs")


def summarise(report: dict) -> None:
    print(f"\nDAG run {report['run_id']} of {report['dag_id']}: {report['state']}")
    print(f"  {'task':<24} {'state':<16} {'duration':>9}")
    for task in report["tasks"]:
        took = f"{task['seconds']:.1f} s" if task["seconds"] is not None else "-"
        print(f"  {task['task_id']:<24} {task['state'] or 'none':<16} {took:>9}")
    run_ = report["mlflow"]
    if run_ is None:
        print(
            "No MLflow run: tracking is off"
            if not report["tracked"]
            else "No MLflow run found for it"
        )
        return
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in sorted(run_["metrics"].items()))
    print(
        f"MLflow run {run_['run_id']}: {run_['status']}, {len(run_['params'])} parameters"
    )
    print(f"  metrics  {metrics or '(none)'}")
    print(f"  address  {run_['url']}")


def keep_running(mlflow_uri: str | None, port: int) -> list[int]:
    """Start the Airflow UI (the API server) for the user; return the ids to stop."""
    if port_taken(port):
        print(f"127.0.0.1:{port} is taken: not starting the Airflow UI")
        return []
    log = LOCAL / "airflow-ui.log"
    server = subprocess.Popen(
        [
            AIRFLOW_BIN / "airflow",
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=airflow_env(),
        start_new_session=True,
    )
    print(f"Airflow UI  http://127.0.0.1:{port} (process {server.pid}, log {log})")
    if mlflow_uri:
        print(f"MLflow UI   {mlflow_uri}")
    return [server.pid]


def prepare_environments() -> None:
    step(1, "The project's environment, .venv (uv sync --locked)")
    run(["uv", "sync", "--locked"], cwd=PROJECT, env=own_env())
    step(2, f"Airflow's own environment, {AIRFLOW_VENV.relative_to(PROJECT)}")
    run(
        ["uv", "sync", "--locked", "--project", PROJECT / "deploy/airflow"],
        env=own_env(UV_PROJECT_ENVIRONMENT=str(AIRFLOW_VENV)),
    )


def prepare_dags(pipelines: str, mlflow_uri: str | None) -> list[str]:
    """Make the Airflow home and write the DAGs into it; return their ids."""
    step(
        4, f"An Airflow home, {AIRFLOW_HOME.relative_to(PROJECT)} (SQLite, no examples)"
    )
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    run(
        [AIRFLOW_BIN / "airflow", "db", "migrate"],
        log=LOCAL / "db.log",
        env=airflow_env(),
    )
    step(5, "The DAG, with the local operator")
    # Retry at once: nothing here is worth waiting `retry_delay` for.
    params = ["operator=local", "retry_delay=0"]
    params += [f"mlflow_tracking_uri={mlflow_uri}"] if mlflow_uri else []
    kedro = str(PROJECT / ".venv/bin/kedro")
    try:
        dags = write_dags(AIRFLOW_HOME / "dags", "local", pipelines, params, kedro)
    except subprocess.CalledProcessError as error:
        raise LocalError(
            "`kedro airflow create` failed: see its message above"
        ) from error
    dag_ids = check_imports([dag for dag in dags if dag.name.endswith("_dag.py")])
    print(f"    {', '.join(dag_ids)} imports cleanly")
    return dag_ids


def run_and_report(dag_id: str, mlflow_uri: str | None) -> dict:
    step(6, f"One DAG run of {dag_id} (airflow dags test; log build/local/dag-run.log)")
    run_id, state = dag_run(dag_id)
    tasks = airflow_json("tasks", "states-for-dag-run", dag_id, run_id)
    experiment = config("airflow.yml", "default").get("mlflow_experiment")
    report = {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": state,
        "tracked": mlflow_uri is not None,
        "tasks": [
            {**task, "seconds": seconds(task)}
            for task in sorted(tasks, key=lambda t: t["start_date"] or "~")
        ],
        "mlflow": mlflow_run(mlflow_uri, experiment, dag_id, run_id)
        if mlflow_uri
        else None,
    }
    summarise(report)
    return report


def deploy(pipelines: str, leave_running: bool) -> int:
    settings = config("deploy.yml")
    LOCAL.mkdir(parents=True, exist_ok=True)
    prepare_environments()
    step(3, "An MLflow server on 127.0.0.1")
    uri, server = None, None
    if config("airflow.yml", "default").get("mlflow_start"):
        uri, server = start_mlflow(int(settings.get("local_mlflow_port") or 5000))
    else:
        print("    none: airflow.yml's mlflow_start is off")
    kept: list[int] = []
    try:
        dag_ids = prepare_dags(pipelines, uri)
        reports = [run_and_report(dag_id, uri) for dag_id in dag_ids]
        REPORT.write_text(
            json.dumps({"mlflow_uri": uri, "runs": reports}, indent=2) + "\n"
        )
        if leave_running:
            kept = keep_running(uri, int(settings.get("local_airflow_port") or 8080))
            kept += [server.pid] if server else []
            if kept:
                print(f"Stop them with: kill -- {' '.join(f'-{pid}' for pid in kept)}")
        return 0 if all(report["state"] == "success" for report in reports) else 1
    finally:
        if server and server.pid not in kept:
            stop(server)
            print(f"Stopped the MLflow server (process {server.pid})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="__default__", help="comma-separated")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave MLflow and the Airflow UI running afterwards",
    )
    args = parser.parse_args(argv)
    try:
        return deploy(args.pipelines, args.keep_running)
    except LocalError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
