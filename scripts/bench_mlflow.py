"""Benchmark the DAG run's MLflow start task and a whole local DAG run (`nox -s bench_mlflow`).

One bake of the default project, one local MLflow server (SQLite), in one run,
interleaved so the machine's noise hits both sides alike; medians and ratios.

- start task, `mlflow_tasks_on: worker` vs `pod`. worker: a fresh process of Airflow's
  Python (standing in for the task process a worker forks) imports the helper module
  the DAG imports from its folder (<package>_mlflow_<hash>) and calls start_dag_run,
  as the DAG's PythonOperator does. pod: `python -m kedro run --pipelines
  start_mlflow_run` in the project's .venv, as the pod runs it (KEDRO_MLFLOW=off, and
  the DAG's MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, AIRFLOW_DAG_ID and
  AIRFLOW_RUN_ID), with no pod to schedule and no image to pull. Each repetition
  starts a run under a new Airflow run id ("create"), then starts it again with the
  same id ("found on retry"); MLflow must then hold exactly one run of that id. One
  untimed call of each mode comes first (it creates the experiment).
- whole DAG run, `grouping: true` vs `false`: the local-operator DAG of __default__
  (or `--pipeline`'s), written by <package>_deploy.dags.write_dags as `nox -s deploy
  -- --target local` writes it, MLflow tasks on the worker, in two Airflow homes,
  timed with `airflow dags test`.

`--smoke`: one repetition of each, and the DAG of the smallest pipeline, data_processing
(nor, from nox, bytecode compiled up front): it shows that the benchmark runs, and its
figures mean nothing.

Usage: python bench_mlflow.py <baked project> <Airflow's environment> <results.json>
       [--smoke] [--start-repeats N] [--dag-repeats N] [--pipeline NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

# nox points these at its session's environment; the project and Airflow have their own.
# Bytecode is written, as on any machine (nox compiled the environments, unless smoke).
for key in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "NOX_CURRENT_SESSION"):
    os.environ.pop(key, None)
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

START_DAG_ID = "bench-mlflow-start"
START_PIPELINE = "start_mlflow_run"  # plan.MLFLOW_START: the pod's `kedro run --pipelines`
WORKER_START = """
import importlib, sys
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])  # the DAG folder, as Airflow puts it on the path
mlflow_runs = importlib.import_module(sys.argv[2])
uri, experiment, dag_id, run_id = sys.argv[3:]
print(mlflow_runs.start_dag_run(uri, experiment, None, SimpleNamespace(dag_id=dag_id, run_id=run_id)))
"""
WRITE_DAGS = """
import sys
from pathlib import Path
from {package}_deploy.dags import write_dags
target, uri, pipeline, *params = sys.argv[1:]
write_dags(Path(target), "local", pipeline, params, {{"MLFLOW_TRACKING_URI": uri}})
"""
# `airflow dags test`'s lines: [DAG TEST] starting/end task, and how the run finished.
TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")
RUN_LINE = re.compile(r"DagRun Finished: dag_id=\S+, .*state=(\w+)")
MLFLOW_TASKS = {"start_mlflow_run", "end_mlflow_run"}  # plan.MLFLOW_START, MLFLOW_END
CASES = ("create", "found on retry")
NOTES = [
    "start task: worker = a fresh Python of Airflow's environment imports the DAG folder's helper and calls",
    "start_dag_run (a worker's task process also pays Airflow's own task start, as does the task that launches a",
    "pod); pod = `kedro run --pipelines start_mlflow_run` in the project's .venv, WITHOUT pod scheduling, image pull",
    "and container start, which add seconds to minutes on GKE: the pod figures and ratios are lower bounds.",
    "DAG run: wall = the whole `airflow dags test` process (CLI start, DAG parse, the in-process API-server start paid",
    "inside the first task, exit); tasks = from the first pipeline task's start to end_mlflow_run's end.",
    "paired: the median of each repetition's ratio (the two sides of a repetition run one after the other).",
]


def timed(command: list, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([str(part) for part in command], check=False, **kwargs)
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return seconds, result


def start_mlflow(project: Path, store: Path) -> tuple[str, subprocess.Popen]:
    """A local MLflow server, as the local deployment starts one: one worker, no job
    runners. It starts in the background: see ``wait_for``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            *(project / ".venv/bin/mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"),
            *("--artifacts-destination", store / "artifacts", "--workers", "1"),
        ],
        stdout=(store / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,  # its workers go with it when it is stopped
    )
    return f"http://127.0.0.1:{port}", server


def wait_for(uri: str, server: subprocess.Popen, log: Path) -> None:
    """Until the MLflow server answers; exit if it does not within 3 minutes."""
    for _ in range(360):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.5)
    sys.exit(f"The MLflow server did not answer at {uri}: see {log}")


def mlflow_call(uri: str, method: str, endpoint: str, **body) -> dict:
    """A call to MLflow's REST API: ``body`` is a GET's query, a POST's JSON."""
    url = f"{uri}/api/2.0/mlflow/{endpoint}"
    if method == "GET":
        request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(body)}")
    else:
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@dataclass
class Bench:
    project: Path  # the bake, with its .venv
    airflow: Path  # Airflow's environment
    work: Path
    uri: str  # of the MLflow server
    pipeline: str  # whose DAG runs
    helper: str | None = None  # the MLflow helper module the DAG imports, beside it

    @property
    def package(self) -> str:
        return self.project.name.replace("-", "_")

    @property
    def experiment(self) -> str:
        """conf/base/mlflow.yml's experiment, which the DAGs log to."""
        mlflow = yaml.safe_load((self.project / "conf/base/mlflow.yml").read_text())
        return mlflow["tracking"]["experiment"]["name"]

    def home(self, grouping: bool) -> Path:
        return self.work / f"airflow-grouping-{'on' if grouping else 'off'}"

    def airflow_env(self, grouping: bool) -> dict[str, str]:
        home = self.home(grouping)
        return os.environ | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONUNBUFFERED": "1",  # its lines are timed as they come
        }

    def prepare_home(self, grouping: bool) -> tuple[str, str | None]:
        """An Airflow home with the local DAG of the pipeline; return its DAG id and the
        helper module it imports."""
        dags = self.home(grouping) / "dags"
        dags.parent.mkdir(parents=True, exist_ok=True)
        migrated = self.home(not grouping) / "airflow.db"
        if migrated.exists():  # the other home's: the same empty database
            shutil.copyfile(migrated, dags.parent / "airflow.db")
        else:
            timed([self.airflow / "bin/airflow", "db", "migrate"], env=self.airflow_env(grouping), capture_output=True)
        params = ["operator=local", "retry_delay=0", "mlflow_tasks_on=worker", f"grouping={str(grouping).lower()}"]
        script = WRITE_DAGS.format(package=self.package)
        command = [self.project / ".venv/bin/python", "-c", script, dags, self.uri, self.pipeline, *params]
        timed(command, cwd=self.project, capture_output=True, text=True)
        (dag,) = dags.glob("*_dag.py")
        dag_id = re.search(r'dag_id="([^"]+)"', dag.read_text()).group(1)
        helpers = [path.stem for path in dags.glob(f"{self.package}_mlflow_*.py")]
        return dag_id, helpers[0] if helpers else None

    def start_on_worker(self, run: str) -> float:
        seconds, _ = timed(
            [
                *(self.airflow / "bin/python", "-c", WORKER_START, self.home(True) / "dags", self.helper),
                *(self.uri, self.experiment, START_DAG_ID, run),
            ],
            capture_output=True,
            text=True,
        )
        return seconds

    def start_in_pod(self, run: str) -> float:
        seconds, _ = timed(
            [self.project / ".venv/bin/python", "-m", "kedro", "run", "--pipelines", START_PIPELINE, "--env", "local"],
            cwd=self.project,
            env=os.environ
            | {
                "KEDRO_MLFLOW": "off",  # as the DAG gives the task: it starts the run, it tracks none
                "MLFLOW_TRACKING_URI": self.uri,
                "MLFLOW_EXPERIMENT_NAME": self.experiment,
                "AIRFLOW_DAG_ID": START_DAG_ID,
                "AIRFLOW_RUN_ID": run,
            },
            capture_output=True,
            text=True,
        )
        return seconds

    def runs_of(self, run: str) -> list[str]:
        """The MLflow runs tagged with the start DAG's id and Airflow run id ``run``."""
        experiment = mlflow_call(self.uri, "GET", "experiments/get-by-name", experiment_name=self.experiment)
        found = mlflow_call(
            self.uri,
            "POST",
            "runs/search",
            experiment_ids=[experiment["experiment"]["experiment_id"]],
            filter=f"tags.airflow_dag_id = '{START_DAG_ID}' and tags.airflow_run_id = '{run}'",
        )
        return [r["info"]["run_id"] for r in found.get("runs", [])]

    def dag_run(self, grouping: bool, dag_id: str, log: Path) -> dict:
        """Time one `airflow dags test`: the whole process, and its tasks as they log."""
        at: dict[tuple[str, str], float] = {}
        state = None
        command = [str(self.airflow / "bin/airflow"), "dags", "test", dag_id]
        start = time.perf_counter()
        with log.open("w") as out:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.airflow_env(grouping)
            )
            for line in process.stdout:
                out.write(line)
                if match := TASK_LINE.search(line):
                    at[match.groups()] = time.perf_counter()
                elif match := RUN_LINE.search(line):
                    state = match.group(1)
            process.wait()
        wall = time.perf_counter() - start
        if process.returncode or state != "success":
            sys.exit(f"The DAG run of {dag_id} did not succeed ({state}): see {log}")
        pipeline_tasks = {task for event, task in at if event == "starting"} - MLFLOW_TASKS
        first = min(at["starting", task] for task in pipeline_tasks)
        return {
            "wall_s": round(wall, 3),
            "tasks_s": round(at["end task", "end_mlflow_run"] - first, 3),
            "start_task_s": round(at["end task", "start_mlflow_run"] - at["starting", "start_mlflow_run"], 3),
            "pipeline_tasks": len(pipeline_tasks),
        }


def measure_starts(bench: Bench, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of each start mode, for a new Airflow run id and for the same id again."""
    modes = {"worker": bench.start_on_worker, "pod": bench.start_in_pod}
    for mode, start in modes.items():  # untimed: the experiment is created, files are cached
        start(f"warm-up-{mode}")
    seconds = {mode: {"create": [], "found on retry": []} for mode in modes}
    for repeat in range(repeats):
        for mode in list(modes)[:: 1 if repeat % 2 == 0 else -1]:
            run = f"bench-{mode}-{repeat}"
            created = modes[mode](run)
            found = modes[mode](run)
            if len(runs := bench.runs_of(run)) != 1:
                sys.exit(f"{mode}: a start and its retry for {run} left {len(runs)} MLflow runs, not one: {runs}")
            seconds[mode]["create"].append(round(created, 3))
            seconds[mode]["found on retry"].append(round(found, 3))
            print(f"   {mode:<8} create {created:6.2f} s   found on retry {found:6.2f} s", flush=True)
    return seconds


def measure_dags(bench: Bench, dag_id: str, repeats: int) -> dict[str, list[dict]]:
    """Timings of the DAG's runs with grouping on and off."""
    runs = {"on": [], "off": []}
    for repeat in range(repeats):
        for grouping in (True, False)[:: 1 if repeat % 2 == 0 else -1]:
            label = "on" if grouping else "off"
            runs[label].append(bench.dag_run(grouping, dag_id, bench.work / f"dag-run-{label}-{repeat}.log"))
            print(f"   grouping {label:<4} {json.dumps(runs[label][-1])}", flush=True)
    return runs


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def ratios(a: list[float], b: list[float]) -> dict[str, float]:
    """a ÷ b: of the medians, and the median of the interleaved pairs' ratios (which the machine's drift spares)."""
    paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
    return {"of_medians": round(median(a) / median(b), 3), "paired": round(paired, 3)}


def python_version(python: Path) -> str:
    command = [python, "-c", "import platform; print(platform.python_version())"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="the bake, with its .venv")
    parser.add_argument("airflow", type=Path, help="Airflow's environment (from src/<package>_deploy/airflow's lock)")
    parser.add_argument("results", type=Path)
    parser.add_argument("--smoke", action="store_true", help="one repetition of each: no figure to read")
    parser.add_argument("--start-repeats", type=int, default=5)
    parser.add_argument("--dag-repeats", type=int, default=3)
    parser.add_argument("--pipeline", default="__default__", help="whose DAG runs (smoke: data_processing)")
    args = parser.parse_args()
    if args.smoke:
        args.start_repeats = args.dag_repeats = 1
        args.pipeline = "data_processing"  # its smallest DAG: 3 nodes, on the sample data
    project, airflow = args.project.resolve(), args.airflow.resolve()
    work = airflow.parent  # beside Airflow's environment: the MLflow store, Airflow homes and logs
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    uri, server = start_mlflow(project, work / "mlflow")
    try:
        bench = Bench(project, airflow, work, uri, args.pipeline)
        print(f"== Two Airflow homes with the local DAG, grouping on and off, while MLflow starts at {uri}", flush=True)
        prepared = {bench.prepare_home(grouping) for grouping in (True, False)}
        wait_for(uri, server, work / "mlflow" / "server.log")
        if len(prepared) != 1:
            sys.exit(f"Expected one DAG id and helper in both homes, not {prepared}")
        ((dag_id, bench.helper),) = prepared
        if bench.helper is None:
            sys.exit("The DAG imports no MLflow helper: is mlflow_tasks_on off?")
        print(f"== Start task: {args.start_repeats} repetition(s) of each mode", flush=True)
        starts = measure_starts(bench, args.start_repeats)
        print(f"== Whole DAG run: {args.dag_repeats} repetition(s) with grouping on and off (1-3 min each)", flush=True)
        dags = measure_dags(bench, dag_id, args.dag_repeats)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    start_medians = {mode: {case: median(v) for case, v in cases.items()} for mode, cases in starts.items()}
    start_ratios = {case: ratios(starts["pod"][case], starts["worker"][case]) for case in CASES}
    keys = ("wall_s", "tasks_s", "start_task_s")
    dag_medians = {
        label: {key: median([r[key] for r in runs]) for key in keys} | {"pipeline_tasks": runs[0]["pipeline_tasks"]}
        for label, runs in dags.items()
    }
    on, off = dag_medians["on"], dag_medians["off"]
    dag_ratios = {key: ratios([r[key] for r in dags["on"]], [r[key] for r in dags["off"]]) for key in keys}
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    table = [
        *(["Smoke run: one repetition of each; the figures mean nothing.", ""] if args.smoke else []),
        f"| start task, median of {args.start_repeats} | worker s | pod s | pod ÷ worker | paired |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {case} | {start_medians['worker'][case]:.2f} | {start_medians['pod'][case]:.2f} "
            f"| {start_ratios[case]['of_medians']:.1f} | {start_ratios[case]['paired']:.1f} |"
            for case in CASES
        ),
        "",
        f"| DAG run of {args.pipeline}, median of {args.dag_repeats} | grouping on | grouping off | on ÷ off | paired |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| tasks: pipeline + start/end_mlflow_run | {on['pipeline_tasks']} + 2 | {off['pipeline_tasks']} + 2 | | |",
        *(
            f"| {name} | {on[key]:.1f} | {off[key]:.1f} "
            f"| {dag_ratios[key]['of_medians']:.3f} | {dag_ratios[key]['paired']:.3f} |"
            for key, name in (
                ("wall_s", "wall s, API-server start included"),
                ("tasks_s", "tasks s, API-server start excluded"),
                ("start_task_s", "start_mlflow_run task s (API-server start)"),
            )
        ),
        "",
        *NOTES,
        f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load[0]} before, {load[1]} after.",
    ]
    print("\n".join(table))
    report = {
        "smoke": args.smoke,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "project_python": python_version(project / ".venv/bin/python"),
            "airflow_python": python_version(airflow / "bin/python"),
            "load_average_1min_before_after": load,
        },
        "start_task": {
            "repeats": args.start_repeats,
            "seconds": starts,
            "medians": start_medians,
            "ratios_pod_over_worker": start_ratios,
        },
        "dag_run": {
            "pipeline": args.pipeline,
            "dag_id": dag_id,
            "repeats": args.dag_repeats,
            "runs": dags,
            "medians": dag_medians,
            "ratios_on_over_off": dag_ratios,
        },
        "total_s": round(time.perf_counter() - began, 1),
        "table": table,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Results written to {args.results} (in {report['total_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
