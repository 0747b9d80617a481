"""Deploy on this machine: whole DAG runs in a local Airflow, tracked by a local MLflow.

`nox -s deploy` (the `local` target) runs this. It prepares the project's environment
(.venv) and Airflow's own (from airflow/uv.lock, beside this file), starts an MLflow
server on 127.0.0.1 unless one answers there, makes an Airflow home (SQLite, no
examples), writes the DAGs with the local operator, checks that they import, runs
them and sums up. One DAG run goes through `airflow dags test`, in one process;
several (more pipelines, or more than one `--conf`) are triggered at once in a local
Airflow of their own, API server, scheduler and DAG processor, as Composer would run
them: their tasks run side by side, as many runs of a DAG as its `max_active_runs`.
It stops what it started, unless asked to leave MLflow and the Airflow UI running.
Everything lives in build/local/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from . import config
from .dags import write_dags
from .plan import check_settings

AIRFLOW_LOCK = Path(__file__).with_name("airflow")
STEPS = 6
# nox points these at its own session; the project and Airflow have their own.
NOT_INHERITED = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH")
# Lines of `airflow dags test` that say how the run goes.
TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")
RUN_LINE = re.compile(r"DagRun Finished: dag_id=(\S+), .*run_id=([^,]+), .*state=(\w+)")
IMPORTS_PROBE = """\
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[2]))  # as Airflow's DAG folder
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[2])
errors = {k: str(v) for k, v in bag.import_errors.items()}
json.dump({"dags": sorted(bag.dags), "errors": errors}, open(sys.argv[1], "w"))
"""


FINISHED = {"success", "failed"}  # a DAG run's end states
# How long runs at the same time may take, all told, before the deployment gives up.
SCHEDULED_MINUTES = 60
# How long the local scheduler's API server may take to answer, and the DAG processor
# to parse the DAGs.
START_SECONDS = 180


class LocalError(Exception):
    """A problem the user can fix: the message says what and how."""


def step(number: int, text: str) -> None:
    print(f"==> [{number}/{STEPS}] {text}", flush=True)


def own_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return env | extra


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


def healthy(uri: str) -> bool:
    try:
        return requests.get(f"{uri}/health", timeout=2).ok
    except requests.RequestException:
        return False


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop ``process`` and its children (its own session), by process id."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def seconds(task: dict) -> float | None:
    if not (task.get("start_date") and task.get("end_date")):
        return None
    start, end = (
        datetime.fromisoformat(task[key]) for key in ("start_date", "end_date")
    )
    return (end - start).total_seconds()


class Local:
    """The local deployment of ``project`` in Kedro environment ``env``."""

    def __init__(self, project: Path, env: str):
        self.project, self.env = project, env
        self.home = project / "build/local"
        self.airflow_home = self.home / "airflow"
        self.airflow_bin = self.home / "airflow-venv/bin"
        self.mlflow_store = self.home / "mlflow"
        self.report_file = self.home / "deploy.json"
        loader = config.project_loader(project, env)
        self.settings = config.deploy_settings(loader)
        dags = config.read(loader, "airflow").get("default") or {}
        where = config.origin(loader, "airflow", "default")
        # Only the MLflow switch: the checks that matter run when the DAG is made.
        tasks_on = check_settings(dags, {}, where)["mlflow_tasks_on"]
        mlflow = config.read(loader, "mlflow") if tasks_on != "off" else {}
        self.experiment = ((mlflow.get("tracking") or {}).get("experiment") or {}).get(
            "name"
        )

    def airflow_env(self) -> dict[str, str]:
        return own_env(
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.airflow_home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            # A UI on 127.0.0.1 for the one user of this machine: no login.
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        )

    def airflow_json(self, *args: str) -> list[dict]:
        """An `airflow ... -o json` answer (Airflow logs to stdout before it)."""
        result = subprocess.run(
            [self.airflow_bin / "airflow", *args, "--output", "json"],
            env=self.airflow_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    def shown(self, path: Path) -> Path:
        return path.relative_to(self.project)

    def prepare_environments(self) -> None:
        step(1, "The project's environment, .venv (uv sync --locked)")
        run(["uv", "sync", "--locked"], cwd=self.project, env=own_env())
        step(2, f"Airflow's own environment, {self.shown(self.airflow_bin.parent)}")
        self.prepare_airflow()

    def prepare_airflow(self) -> None:
        run(
            ["uv", "sync", "--locked", "--project", AIRFLOW_LOCK],
            env=own_env(UV_PROJECT_ENVIRONMENT=str(self.airflow_bin.parent)),
        )

    def start_mlflow(self, port: int) -> tuple[str, subprocess.Popen | None]:
        """The MLflow server at 127.0.0.1:``port``: the one running there, or a new one."""
        uri = f"http://127.0.0.1:{port}"
        if healthy(uri):
            print(f"    MLflow already answers at {uri}: using it")
            return uri, None
        if port_taken(port):
            raise LocalError(
                f"127.0.0.1:{port} is taken by something that is not MLflow: set "
                f"local_mlflow_port in conf/{self.env}/deploy.yml to a free port"
            )
        self.mlflow_store.mkdir(parents=True, exist_ok=True)
        log = self.home / "mlflow.log"
        server = subprocess.Popen(
            [
                *(self.project / ".venv/bin/mlflow", "server", "--host", "127.0.0.1"),
                *("--port", str(port)),
                *(
                    "--backend-store-uri",
                    f"sqlite:///{self.mlflow_store / 'mlflow.db'}",
                ),
                *("--artifacts-destination", str(self.mlflow_store / "artifacts")),
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

    def prepare_dags(self, pipelines: str, mlflow_uri: str | None) -> list[str]:
        """Make the Airflow home and write the DAGs into it; return their ids."""
        step(
            4, f"An Airflow home, {self.shown(self.airflow_home)} (SQLite, no examples)"
        )
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        run(
            [self.airflow_bin / "airflow", "db", "migrate"],
            log=self.home / "db.log",
            env=self.airflow_env(),
        )
        step(5, "The DAG, with the local operator")
        # Retry at once: nothing here is worth waiting `retry_delay` for.
        params = ["operator=local", "retry_delay=0"]
        # mlflow.yml's server, the one started here: ${oc.env:MLFLOW_TRACKING_URI}.
        tracking = {"MLFLOW_TRACKING_URI": mlflow_uri} if mlflow_uri else {}
        folder = self.airflow_home / "dags"
        try:
            dags = write_dags(folder, self.env, pipelines, params, tracking)
        except subprocess.CalledProcessError as error:
            raise LocalError(
                "`kedro airflow create` failed: see its message above"
            ) from error
        dag_ids = self.check_imports(
            [dag for dag in dags if dag.name.endswith("_dag.py")]
        )
        print(f"    {', '.join(dag_ids)} imports cleanly")
        return dag_ids

    def check_imports(self, dags: list[Path]) -> list[str]:
        """The DAG ids in ``dags``, loaded by Airflow; raise on any import error."""
        self.home.mkdir(parents=True, exist_ok=True)
        out = self.home / "imports.json"
        ids = []
        for dag in dags:
            run(
                [self.airflow_bin / "python", "-c", IMPORTS_PROBE, out, dag],
                log=self.home / "imports.log",
                env=self.airflow_env(),
            )
            report = json.loads(out.read_text())
            if report["errors"]:
                raise LocalError(f"{dag} does not import: {report['errors']}")
            ids += report["dags"]
        return ids

    def dag_run(self, dag_id: str, conf: str | None = None) -> tuple[str, str]:
        """Run the DAG once (triggered with the JSON ``conf``, its parameters), saying
        which tasks start and end; return (run id, state)."""
        log = self.home / "dag-run.log"
        started = {}
        found = None
        with log.open("w") as out:
            process = subprocess.Popen(
                [self.airflow_bin / "airflow", "dags", "test", dag_id]
                + (["--conf", conf] if conf else []),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.airflow_env(),
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

    def mlflow_run(self, uri: str, dag_id: str, run_id: str) -> dict | None:
        """The MLflow run of the DAG run, as MLflow's REST API tells it."""
        from .mlflow_runs import Tracking  # noqa: PLC0415 (a bake with MLflow only)

        tracking = Tracking(uri)
        experiment_id = tracking.experiment_id(self.experiment, create=False)
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

    def report(
        self, dag_id: str, run_id: str, state: str, tasks: list[dict], uri: str | None
    ) -> dict:
        """What deploy.json and the summary say of one DAG run."""
        report = {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": state,
            "tracked": uri is not None,
            "tasks": [
                {**task, "seconds": seconds(task)}
                for task in sorted(tasks, key=lambda t: t["start_date"] or "~")
            ],
            "mlflow": self.mlflow_run(uri, dag_id, run_id) if uri else None,
        }
        summarise(report)
        return report

    def run_and_report(
        self, dag_id: str, mlflow_uri: str | None, conf: str | None = None
    ) -> dict:
        step(
            6,
            f"One DAG run of {dag_id} (airflow dags test; log build/local/dag-run.log)",
        )
        run_id, state = self.dag_run(dag_id, conf)
        tasks = self.airflow_json("tasks", "states-for-dag-run", dag_id, run_id)
        return self.report(dag_id, run_id, state, tasks, mlflow_uri)

    def scheduled_runs(
        self, runs: list[tuple[str, str | None]], mlflow_uri: str | None, keep: bool
    ) -> tuple[list[dict], list[int]]:
        """Trigger ``runs`` (DAG id, JSON conf) at once in a local scheduler, watch
        them to their end and report each; return the reports and, when ``keep``,
        the process ids left running (the scheduler's, and the UI's)."""
        step(
            6,
            f"{len(runs)} DAG runs at once, in a local Airflow scheduler (logs in "
            f"{self.shown(self.airflow_home / 'logs')})",
        )
        scheduler = Scheduler(self, self.settings["local_airflow_port"])
        scheduler.start()
        try:
            dag_ids = sorted({dag_id for dag_id, _ in runs})
            scheduler.wait_parsed(dag_ids)
            for dag_id in dag_ids:
                scheduler.unpause(dag_id)
            triggered = []
            for number, (dag_id, conf) in enumerate(runs, 1):
                run_id = scheduler.trigger(dag_id, conf)
                print(
                    f"    [{number}] {dag_id} {run_id}" + (f" {conf}" if conf else "")
                )
                triggered.append((dag_id, run_id))
            ended = scheduler.watch(triggered)
            reports = [
                self.report(dag_id, run_id, *ended[dag_id, run_id], mlflow_uri)
                for dag_id, run_id in triggered
            ]
        except BaseException:
            scheduler.stop()
            raise
        if keep:
            print(f"Airflow UI  {scheduler.url} (the scheduler goes on running)")
            return reports, scheduler.pids
        scheduler.stop()
        print("Stopped the local Airflow")
        return reports, []

    def keep_running(self, mlflow_uri: str | None, port: int) -> list[int]:
        """Start the Airflow UI (the API server) for the user; return the ids to stop."""
        if port_taken(port):
            print(f"127.0.0.1:{port} is taken: not starting the Airflow UI")
            return []
        log = self.home / "airflow-ui.log"
        server = subprocess.Popen(
            [self.airflow_bin / "airflow", "api-server", "--host", "127.0.0.1"]
            + ["--port", str(port)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=self.airflow_env(),
            start_new_session=True,
        )
        print(f"Airflow UI  http://127.0.0.1:{port} (process {server.pid}, log {log})")
        if mlflow_uri:
            print(f"MLflow UI   {mlflow_uri}")
        return [server.pid]

    def deploy(self, pipelines: str, leave_running: bool, confs: list[str] = ()) -> int:
        """Run each DAG of ``pipelines`` once per JSON ``confs`` (once with none)."""
        for conf in confs:
            check_conf(conf)
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare_environments()
        step(3, "An MLflow server on 127.0.0.1")
        uri, server = None, None
        if self.experiment:
            uri, server = self.start_mlflow(self.settings["local_mlflow_port"])
        else:
            print("    none: airflow.yml's mlflow_tasks_on is off")
        kept: list[int] = []
        try:
            dag_ids = self.prepare_dags(pipelines, uri)
            runs = [(dag_id, conf) for dag_id in dag_ids for conf in confs or [None]]
            if len(runs) == 1:
                ((dag_id, conf),) = runs
                reports = [self.run_and_report(dag_id, uri, conf)]
            else:
                reports, kept = self.scheduled_runs(runs, uri, leave_running)
            self.report_file.write_text(
                json.dumps({"mlflow_uri": uri, "runs": reports}, indent=2) + "\n"
            )
            if leave_running:
                if len(runs) == 1:
                    kept = self.keep_running(uri, self.settings["local_airflow_port"])
                kept += [server.pid] if server else []
                if kept:
                    print(
                        f"Stop them with: kill -- {' '.join(f'-{pid}' for pid in kept)}"
                    )
            return 0 if all(report["state"] == "success" for report in reports) else 1
        finally:
            if server and server.pid not in kept:
                stop(server)
                print(f"Stopped the MLflow server (process {server.pid})")


class Scheduler:
    """A local Airflow that schedules: its API server (the UI too, on ``port``), its
    scheduler with the LocalExecutor, and its DAG processor, each a process of its
    own session, on the Airflow home of ``local``."""

    PROCESSES = ("api-server", "scheduler", "dag-processor")

    def __init__(self, local: Local, port: int):
        self.local, self.port = local, port
        self.url = f"http://127.0.0.1:{port}"
        self.processes: list[subprocess.Popen] = []

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def env(self) -> dict[str, str]:
        return self.local.airflow_env() | {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Where the executor's tasks report to, and the secret of their tokens,
            # which the API server and the scheduler must share.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # The scheduler serves task logs on a port of its own: any free one.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }

    def start(self) -> None:
        if port_taken(self.port):
            raise LocalError(
                f"127.0.0.1:{self.port} is taken, and runs at the same time need "
                f"Airflow's API server there: set local_airflow_port in "
                f"conf/{self.local.env}/deploy.yml to a free port"
            )
        env, home = self.env(), self.local.home
        started, self.since = time.monotonic(), datetime.now(UTC)
        for name in self.PROCESSES:
            extra = ["--host", "127.0.0.1", "--port", str(self.port)]
            self.processes.append(
                subprocess.Popen(
                    [self.local.airflow_bin / "airflow", name]
                    + (extra if name == "api-server" else []),
                    stdout=(home / f"airflow-{name}.log").open("w"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
        print(f"    starting Airflow's {', '.join(self.PROCESSES)}")
        while not self.healthy():
            self.check_alive()
            if time.monotonic() - started > START_SECONDS:
                raise LocalError(
                    f"Airflow's API server did not answer at {self.url} in 3 "
                    f"minutes: see {self.local.shown(home)}/airflow-api-server.log"
                )
            time.sleep(1)
        print(f"    up in {time.monotonic() - started:.0f} s, UI at {self.url}")

    def check_alive(self) -> None:
        for name, process in zip(self.PROCESSES, self.processes, strict=True):
            if process.poll() is not None:
                raise LocalError(
                    f"Airflow's {name} exited ({process.returncode}): see "
                    f"{self.local.shown(self.local.home)}/airflow-{name}.log"
                )

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok
        except requests.RequestException:
            return False

    def api(self, method: str, path: str, **body: Any) -> dict:
        """A call of Airflow's REST API, which needs no login here (all admins)."""
        response = requests.request(
            method, f"{self.url}/api/v2/{path}", json=body or None, timeout=30
        )
        if not response.ok:
            detail = response.text
            with contextlib.suppress(ValueError):
                detail = response.json().get("detail", detail)
            raise LocalError(f"Airflow refused {method} {path}: {detail}")
        return response.json()

    def wait_parsed(self, dag_ids: list[str]) -> None:
        """Until the DAG processor has parsed each DAG since it started."""
        deadline = time.monotonic() + START_SECONDS
        for dag_id in dag_ids:
            while True:
                self.check_alive()
                with contextlib.suppress(LocalError):
                    parsed = self.api("GET", f"dags/{quote(dag_id)}")
                    when = parsed.get("last_parsed_time")
                    if when and datetime.fromisoformat(when) >= self.since:
                        break
                if time.monotonic() > deadline:
                    raise LocalError(
                        f"Airflow did not parse {dag_id} in 3 minutes: see "
                        f"{self.local.shown(self.local.home)}/airflow-dag-processor.log"
                    )
                time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{quote(dag_id)}", is_paused=False)

    def trigger(self, dag_id: str, conf: str | None) -> str:
        """Trigger a run of ``dag_id`` with the JSON ``conf``; return its run id."""
        body = {"logical_date": None, "conf": json.loads(conf) if conf else {}}
        return self.api("POST", f"dags/{quote(dag_id)}/dagRuns", **body)["dag_run_id"]

    def watch(self, runs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        """Say how the tasks of ``runs`` go, numbered as triggered, until every run
        ends; return each run's (state, tasks)."""
        deadline = time.monotonic() + SCHEDULED_MINUTES * 60
        seen: dict[tuple[int, str], str] = {}
        ended: dict[tuple[str, str], tuple] = {}
        while len(ended) < len(runs):
            self.check_alive()
            for number, (dag_id, run_id) in enumerate(runs, 1):
                if (dag_id, run_id) in ended:
                    continue
                path = f"dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}"
                tasks = self.api("GET", f"{path}/taskInstances")["task_instances"]
                for task in tasks:
                    key, state = (number, task["task_id"]), task["state"]
                    if state != seen.get(key) and state in TASK_NEWS:
                        print(f"    [{number}] {TASK_NEWS[state](task)}", flush=True)
                    seen[key] = state
                state = self.api("GET", path)["state"]
                if state in FINISHED:
                    ended[dag_id, run_id] = (state, tasks)
            if time.monotonic() > deadline:
                raise LocalError(
                    f"the runs did not end in {SCHEDULED_MINUTES} minutes: see "
                    f"{self.local.shown(self.local.airflow_home / 'logs')}"
                )
            time.sleep(2)
        return ended

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


def check_conf(conf: str) -> None:
    """Refuse a `--conf` that is not a JSON object, naming it."""
    try:
        parsed = json.loads(conf)
    except ValueError as error:
        parsed = error
    if not isinstance(parsed, dict):
        raise LocalError(
            f"--conf {conf!r} is not a JSON object"
            + (f" ({parsed})" if isinstance(parsed, ValueError) else "")
            + ": give the parameters as '{\"model_options.test_size\": 0.3}'"
        )


# What the local scheduler says when a task reaches a state.
TASK_NEWS = {
    "running": lambda task: f"{task['task_id']} ...",
    "success": lambda task: f"{task['task_id']} done in {seconds(task) or 0:.1f} s",
    "up_for_retry": lambda task: f"{task['task_id']} failed, to be retried",
    "failed": lambda task: f"{task['task_id']} failed",
    "upstream_failed": lambda task: f"{task['task_id']} not run: upstream failed",
}


def summarise(report: dict[str, Any]) -> None:
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
