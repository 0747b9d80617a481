"""Benchmark the DAG run's MLflow start task and a whole local DAG run (`nox -s bench_mlflow`).

One bake of the default project, one local MLflow server (SQLite), in one run,
interleaved so the machine's noise hits both sides alike; medians and ratios.

- start task, `mlflow_start: airflow` vs `pod`. airflow: a fresh process of Airflow's
  Python (standing in for the task process a worker forks) imports the helper module
  of the DAG folder (<package>_mlflow) and calls start_run. pod: `python -m kedro run
  --pipelines mlflow_start` in the project's .venv, as the pod runs it, with no pod to
  schedule and no image to pull. Each repetition starts a run under a new Airflow run
  id ("create"), then starts it again with the same id ("found on retry"). One
  untimed call of each comes first (it creates the experiment).
- whole DAG run, `grouping: true` vs `false`: the local-operator DAG of __default__
  (tools/dags.py's write_dags, as `nox -s deploy -- --target local` writes it) in two
  Airflow homes, timed with `airflow dags test`.

Usage: python bench_mlflow.py <baked project> <Airflow's environment> <results.json>
       [--start-repeats N] [--dag-repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# nox points these at its session's environment; the project and Airflow have their own.
for key in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "NOX_CURRENT_SESSION"):
    os.environ.pop(key, None)

START_DAG_ID = "bench-mlflow-start"
AIRFLOW_START = """
import importlib, sys
sys.path.insert(0, sys.argv[1])  # the DAG folder, as Airflow puts it on the path
mlflow_runs = importlib.import_module(sys.argv[2])
print(mlflow_runs.start_run(*sys.argv[3:]))
"""
# `airflow dags test`'s lines: [DAG TEST] starting/end task, and how the run finished.
TASK_LINE = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end task) task_id=(\S+)", re.MULTILINE)
RUN_LINE = re.compile(r"DagRun Finished: dag_id=\S+, .*state=(\w+)")
MLFLOW_TASKS = {"mlflow_start", "mlflow_end"}
CASES = ("create", "found on retry")
NOTES = [
    "start task: airflow = a fresh Python of Airflow's environment imports the DAG folder's helper and calls start_run",
    "(a worker's task process also pays Airflow's own task start, as does the task that launches a pod); pod = `kedro",
    "run --pipelines mlflow_start` in the project's .venv, WITHOUT pod scheduling, image pull, container start and the",
    "XCom sidecar, which add seconds to minutes on GKE: the pod figures and ratios are lower bounds.",
    "DAG run: wall = the whole `airflow dags test` process (CLI start, DAG parse, the in-process API-server start paid",
    "inside the first task, exit); tasks = from the first pipeline task's start to mlflow_end's end.",
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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            *(project / ".venv/bin/mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"),
            *("--artifacts-destination", store / "artifacts"),
        ],
        stdout=(store / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers go with it when it is stopped
    )
    uri = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return uri, server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    sys.exit(f"The MLflow server did not answer at {uri}: see {store / 'server.log'}")


@dataclass
class Bench:
    project: Path  # the bake, with its .venv
    airflow: Path  # Airflow's environment
    work: Path
    uri: str  # of the MLflow server

    @property
    def experiment(self) -> str:
        return self.project.name  # airflow.yml's mlflow_experiment

    def home(self, grouping: bool) -> Path:
        return self.work / f"airflow-grouping-{'on' if grouping else 'off'}"

    def airflow_env(self, grouping: bool) -> dict[str, str]:
        home = self.home(grouping)
        return os.environ | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }

    def prepare_home(self, grouping: bool) -> str:
        """An Airflow home with the local DAG of __default__; return its DAG id."""
        sys.path.insert(0, str(self.project / "tools"))
        from dags import write_dags  # noqa: PLC0415 (the bake's tools/dags.py)

        dags = self.home(grouping) / "dags"
        dags.parent.mkdir(parents=True, exist_ok=True)
        timed([self.airflow / "bin/airflow", "db", "migrate"], env=self.airflow_env(grouping), capture_output=True)
        params = ["operator=local", f"mlflow_tracking_uri={self.uri}", "retry_delay=0", f"grouping={grouping}"]
        write_dags(dags, "local", "__default__", params, str(self.project / ".venv/bin/kedro"))
        return re.search(r'dag_id="([^"]+)"', (dags / f"{self.project.name}_dag.py").read_text()).group(1)

    def start_on_airflow(self, run: str) -> tuple[float, str]:
        helper = f"{self.project.name.replace('-', '_')}_mlflow"
        seconds, result = timed(
            [
                *(self.airflow / "bin/python", "-c", AIRFLOW_START, self.home(True) / "dags", helper),
                *(self.uri, self.experiment, START_DAG_ID, run),
            ],
            capture_output=True,
            text=True,
        )
        return seconds, result.stdout.strip().splitlines()[-1]

    def start_in_pod(self, run: str) -> tuple[float, str]:
        xcom = self.work / "xcom.json"
        xcom.unlink(missing_ok=True)
        seconds, _ = timed(
            [
                *(self.project / ".venv/bin/python", "-m", "kedro", "run", "--pipelines", "mlflow_start"),
                *("--env", "local", "--params", f"mlflow_start.xcom_path={xcom}"),
            ],
            cwd=self.project,
            env=os.environ
            | {
                "MLFLOW_TRACKING_URI": self.uri,
                "MLFLOW_EXPERIMENT_NAME": self.experiment,
                "MLFLOW_RUN_NAME": run,
                "AIRFLOW_DAG_ID": START_DAG_ID,
                "AIRFLOW_RUN_ID": run,
            },
            capture_output=True,
            text=True,
        )
        return seconds, json.loads(xcom.read_text())

    def dag_run(self, grouping: bool, dag_id: str, log: Path) -> dict:
        """Time one `airflow dags test`: the whole process, and its tasks from the log."""
        with log.open("w") as out:
            wall, _ = timed(
                [self.airflow / "bin/airflow", "dags", "test", dag_id],
                env=self.airflow_env(grouping),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        text = log.read_text()
        finished = RUN_LINE.search(text)
        if not finished or finished.group(1) != "success":
            sys.exit(f"The DAG run of {dag_id} did not succeed: see {log}")
        at = {(event, task): datetime.fromisoformat(stamp) for stamp, event, task in TASK_LINE.findall(text)}
        pipeline_tasks = {task for event, task in at if event == "starting"} - MLFLOW_TASKS
        first = min(at[("starting", task)] for task in pipeline_tasks)
        start_task = at[("end task", "mlflow_start")] - at[("starting", "mlflow_start")]
        return {
            "wall_s": round(wall, 3),
            "tasks_s": round((at[("end task", "mlflow_end")] - first).total_seconds(), 3),
            "start_task_s": round(start_task.total_seconds(), 3),
            "pipeline_tasks": len(pipeline_tasks),
        }


def measure_starts(bench: Bench, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Seconds of each start mode, for a new Airflow run id and for the same id again."""
    modes = {"airflow": bench.start_on_airflow, "pod": bench.start_in_pod}
    for mode, start in modes.items():  # untimed: the experiment is created, files are cached
        start(f"warm-up-{mode}")
    seconds = {mode: {"create": [], "found on retry": []} for mode in modes}
    for repeat in range(repeats):
        for mode in list(modes)[:: 1 if repeat % 2 == 0 else -1]:
            run = f"bench-{mode}-{repeat}"
            created, run_id = modes[mode](run)
            found, same = modes[mode](run)
            if same != run_id:
                sys.exit(f"{mode}: a retry of {run} gave MLflow run {same}, not {run_id}")
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
    parser.add_argument("airflow", type=Path, help="Airflow's environment (from deploy/airflow's lock)")
    parser.add_argument("results", type=Path)
    parser.add_argument("--start-repeats", type=int, default=5)
    parser.add_argument("--dag-repeats", type=int, default=3)
    args = parser.parse_args()
    project, airflow = args.project.resolve(), args.airflow.resolve()
    work = airflow.parent  # beside Airflow's environment: the MLflow store, Airflow homes and logs
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    uri, server = start_mlflow(project, work / "mlflow")
    try:
        bench = Bench(project, airflow, work, uri)
        print(f"== MLflow at {uri}; two Airflow homes with the local DAG, grouping on and off", flush=True)
        dag_ids = {bench.prepare_home(grouping) for grouping in (True, False)}
        if len(dag_ids) != 1:
            sys.exit(f"Expected one DAG id in both homes, not {dag_ids}")
        (dag_id,) = dag_ids
        print(f"== Start task: {args.start_repeats} repetitions of each mode", flush=True)
        starts = measure_starts(bench, args.start_repeats)
        print(f"== Whole DAG run: {args.dag_repeats} repetitions with grouping on and off (1-3 min each)", flush=True)
        dags = measure_dags(bench, dag_id, args.dag_repeats)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    start_medians = {mode: {case: median(v) for case, v in cases.items()} for mode, cases in starts.items()}
    start_ratios = {case: ratios(starts["pod"][case], starts["airflow"][case]) for case in CASES}
    keys = ("wall_s", "tasks_s", "start_task_s")
    dag_medians = {
        label: {key: median([r[key] for r in runs]) for key in keys} | {"pipeline_tasks": runs[0]["pipeline_tasks"]}
        for label, runs in dags.items()
    }
    on, off = dag_medians["on"], dag_medians["off"]
    dag_ratios = {key: ratios([r[key] for r in dags["on"]], [r[key] for r in dags["off"]]) for key in keys}
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    table = [
        f"| start task, median of {args.start_repeats} | airflow s | pod s | pod ÷ airflow | paired |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {case} | {start_medians['airflow'][case]:.2f} | {start_medians['pod'][case]:.2f} "
            f"| {start_ratios[case]['of_medians']:.1f} | {start_ratios[case]['paired']:.1f} |"
            for case in CASES
        ),
        "",
        f"| whole DAG run, median of {args.dag_repeats} | grouping on | grouping off | on ÷ off | paired |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| tasks: pipeline + mlflow_start/end | {on['pipeline_tasks']} + 2 | {off['pipeline_tasks']} + 2 | | |",
        *(
            f"| {name} | {on[key]:.1f} | {off[key]:.1f} "
            f"| {dag_ratios[key]['of_medians']:.3f} | {dag_ratios[key]['paired']:.3f} |"
            for key, name in (
                ("wall_s", "wall s, API-server start included"),
                ("tasks_s", "tasks s, API-server start excluded"),
                ("start_task_s", "mlflow_start task s (API-server start)"),
            )
        ),
        "",
        *NOTES,
        f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load[0]} before, {load[1]} after.",
    ]
    print("\n".join(table))
    report = {
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
            "ratios_pod_over_airflow": start_ratios,
        },
        "dag_run": {
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
