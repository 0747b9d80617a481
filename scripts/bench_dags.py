"""Benchmark DAG generation and parsing on synthetic pipelines (`nox -s bench_dags`).

Two bakes of the default project get the same random pipeline `bench` of 100, 1,000
and 5,000 nodes (about 60% of them in contiguous groups), registered beside the
project's own and outside `__default__`:

- ours: the project as baked, its DAG written by `python -m <package>_deploy generate
  --env local --pipelines bench` (the tagging check, the task plan, the dataset check,
  our template, ruff's formatting), with `mlflow_tasks_on=off`: kedro-airflow's DAG has
  no MLflow tasks, and `nox -s bench_mlflow` measures those;
- plain: kedro-airflow out of the box, `kedro airflow create --env local --pipelines
  bench` with its own template: no deployment hooks (settings.py keeps only the
  config loader's arguments, and turns kedro-mlflow off as our generation does), no
  tagging check in the registry, no airflow.yml. One task per node.

The sides run interleaved, in one run, so the machine's noise hits both alike.

Measured, median of the repetitions:
- generation: wall time of the command, ours ÷ plain;
- cold parse: a fresh process of Airflow's Python loads the DAG file into a DagBag,
  with Airflow and the operator's modules imported first (as in a DAG processor that
  has parsed other DAGs); ours ÷ the floor, a DAG file written out by hand with the
  same operators, tasks, arguments and edges and nothing else, and ours ÷ kedro-
  airflow's DAG;
- growth of each from the second-largest size to the largest (5 is linear from 1,000 to 5,000).

An untimed round comes first. `--smoke`: the smallest size, once, with no untimed round
(nor, from nox, bytecode compiled up front): it shows that the benchmark runs, and its
figures mean nothing.

Usage: python bench_dags.py <workdir with ours/ and plain/> <results.json>
       <python of Airflow, with Kedro for kedro-airflow's DAG> [--smoke]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import yaml

SIZES = (100, 1000, 5000)
REPEATS = 3
PACKAGE = "spaceflights"
SYNTHETIC = '''"""A synthetic pipeline for the benchmark: BENCH_NODES nodes of a random DAG."""

import os
import random

from kedro.pipeline import Node, Pipeline


def step(*inputs):
    return 0


def create_pipeline() -> Pipeline:
    count = int(os.environ.get("BENCH_NODES", "100"))
    rng, nodes, start = random.Random(count), [], 0
    while start < count:  # contiguous chunks: grouping them makes no cycle
        size, grouped = rng.randint(1, 20), rng.random() < 0.6
        for i in range(start, min(start + size, count)):
            reads = sorted(rng.sample(range(i), min(i, 2)))
            tags = [f"airflow.chunk_{start}"] if grouped else []
            inputs = [f"bench_{j}" for j in reads] or None
            nodes.append(Node(step, inputs, f"bench_{i}", name=f"node_{i}", tags=tags))
        start += size
    return Pipeline(nodes)
'''
# Outside `__default__`, which sums the pipelines of pipelines/: registered on its own.
REGISTER = '    pipelines["bench"] = bench_pipeline.create_pipeline()\n'
# Ours writes each DAG run's data in the run's own folder (its generation refuses
# less); kedro-airflow's project has no such resolver.
CATALOG = "bench_{n}:\n  type: pickle.PickleDataset\n  filepath: ${dag_run:${globals:data_root}}/bench/{n}.pkl\n"
PLAIN_CATALOG = "bench_{n}:\n  type: pickle.PickleDataset\n  filepath: data/bench/{n}.pkl\n"
# kedro-airflow's own project: Kedro's starter registry and defaults, with the same
# config loader arguments.
PLAIN_REGISTRY = f'''"""Kedro's starter registry, and the benchmark's pipeline."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from {PACKAGE} import bench_pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
{REGISTER}    return pipelines
'''
PLAIN_SETTINGS = '''"""Kedro's defaults, as kedro-airflow finds a project: no deployment hooks."""

from omegaconf.resolvers import oc

DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # as KEDRO_MLFLOW=off does for ours
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local", "custom_resolvers": {"oc.env": oc.env}}
'''
PARSE = """
import importlib, json, sys, time
for module in sys.argv[2:]:
    importlib.import_module(module)
from airflow.dag_processing.dagbag import DagBag
sys.path.insert(0, sys.argv[1].rpartition("/")[0])  # the DAG folder, as Airflow's
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
print(json.dumps({"seconds": seconds, "tasks": sum(len(d.tasks) for d in bag.dags.values())}))
"""
POD_MODULES = ["airflow.sdk", "airflow.providers.google.cloud.operators.kubernetes_engine", "kubernetes.client"]
PRELOAD = {
    "ours": POD_MODULES,
    "floor": POD_MODULES,
    "default": ["airflow.sdk", "kedro.framework.session", "kedro.framework.project"],
}
FLOOR_HEAD = """from datetime import UTC, datetime, timedelta

from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

MACHINES = {machines}
SECURITY = k8s.V1PodSecurityContext(run_as_non_root=True, seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))
CONTAINER = k8s.V1SecurityContext(
    allow_privilege_escalation=False,
    capabilities=k8s.V1Capabilities(drop=["ALL"]),
    read_only_root_filesystem=True,
    run_as_non_root=True,
)
TMP = [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())]
TMP_MOUNT = [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")]

with DAG(dag_id="floor", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
"""
FLOOR_TASK = """    {var} = GKEStartPodOperator(
        task_id={id!r},
        name={pod!r},
        cmds={cmds!r},
        env_vars={{"KEDRO_MLFLOW": "off"}},
        container_resources=MACHINES[{machine!r}],
        annotations={{"kedro.org/nodes": {nodes!r}}},
        execution_timeout=timedelta(minutes={minutes}),
        project_id={s[gcp_project_id]!r},
        location={s[region]!r},
        cluster_name={s[cluster]!r},
        namespace={s[namespace]!r},
        service_account_name={s[service_account]!r},
        automount_service_account_token=False,
        image={s[image]!r},
        image_pull_policy="IfNotPresent",
        labels={labels!r},
        security_context=SECURITY,
        container_security_context=CONTAINER,
        volumes=TMP,
        volume_mounts=TMP_MOUNT,
        startup_timeout_seconds=600,
        on_finish_action="delete_pod",
    )
"""


def env(**extra: str) -> dict[str, str]:
    """nox's environment without its session's; bytecode written, as on any machine."""
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "NOX_CURRENT_SESSION"}
    drop.add("PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def prepare(project: Path, plain: bool) -> None:
    """Give the bake the synthetic pipeline; make the plain one kedro-airflow's."""
    package = project / "src" / PACKAGE
    (package / "bench_pipeline.py").write_text(SYNTHETIC)
    (project / "conf/local/catalog_bench.yml").write_text(PLAIN_CATALOG if plain else CATALOG)
    registry = package / "pipeline_registry.py"
    if plain:  # no registry check, no deployment pipelines, no hooks, no airflow.yml
        registry.write_text(PLAIN_REGISTRY)
        (package / "settings.py").write_text(PLAIN_SETTINGS)
        (project / "conf/base/airflow.yml").unlink()
        return
    text = registry.read_text().replace("\n\ndef ", f"\nfrom {PACKAGE} import bench_pipeline\n\n\ndef ", 1)
    last = "    pipelines.update(dag_pipelines())\n"
    if last not in text:
        raise SystemExit(f"{registry} is not shaped as this benchmark expects: update prepare()")
    registry.write_text(text.replace(last, REGISTER + last))


def generate(project: Path, nodes: int, plain: bool) -> tuple[float, Path]:
    """Write the DAG of `bench`; return the seconds it took and the DAG file."""
    if plain:
        out = project / "dags/plain"
        shutil.rmtree(out, ignore_errors=True)
        command = [project / ".venv/bin/kedro", "airflow", "create", "--env", "local", "--pipelines", "bench"]
        command += ["--target-dir", out]
    else:
        out = project / "dags/local"
        command = [project / ".venv/bin/python", "-m", f"{PACKAGE}_deploy", "generate", "--env", "local"]
        command += ["--pipelines", "bench", "--params", "mlflow_tasks_on=off"]
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=project, env=env(BENCH_NODES=str(nodes)), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    (dag,) = (path for path in out.glob("*.py") if "bench" in path.name)
    return seconds, dag


def literals(dag: Path) -> dict[str, object]:
    """The module-level literals of our DAG file (its KEDRO_RUN, TASKS and EDGES)."""
    values = {}
    for statement in ast.parse(dag.read_text()).body:
        if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
            try:
                values[statement.targets[0].id] = ast.literal_eval(statement.value)
            except ValueError:
                continue
    return values


def floor_dag(ours: Path, settings: dict, path: Path) -> None:
    """The hand-written floor: our DAG's operators, tasks, arguments and edges, each
    written out, sharing the Kubernetes objects as one would by hand; nothing else."""
    dag = literals(ours)
    machines = ", ".join(
        f"{size!r}: k8s.V1ResourceRequirements(requests={m.get('requests') or {}!r}, limits={m.get('limits') or {}!r})"
        for size, m in settings["machines"].items()
    )
    labels = {"app.kubernetes.io/name": PACKAGE, "kedro.org/pipeline": "bench", "kedro.org/env": "local"}
    var = {task: f"t{i}" for i, task in enumerate(dag["TASKS"])}
    lines = [FLOOR_HEAD.format(machines="{" + machines + "}")]
    for task, (pod, machine, minutes, selection, nodes) in dag["TASKS"].items():
        cmds = [*dag["KEDRO_RUN"], *selection]
        lines.append(
            FLOOR_TASK.format(
                var=var[task],
                id=task,
                pod=pod,
                cmds=cmds,
                machine=machine,
                nodes=nodes,
                minutes=minutes,
                s=settings,
                labels=labels,
            )
        )
    lines += [f"    {var[a]} >> {var[b]}" for a, b in dag["EDGES"]]
    path.write_text("\n".join(lines) + "\n")


def parse(python: Path, dag: Path, kind: str, home: Path) -> dict:
    result = subprocess.run(
        [python, "-c", PARSE, dag, *PRELOAD[kind]],
        env=env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false"),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"Airflow could not parse {dag}:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(work: Path, python: Path, nodes: int, repeats: int, settings: dict) -> dict:
    ours, plain = work / "ours" / PACKAGE, work / "plain" / PACKAGE
    seconds = {key: [] for key in ("generate ours", "generate plain", "parse ours", "parse floor", "parse default")}
    tasks = {}
    for repeat in range(repeats):
        sides = [(ours, False), (plain, True)][:: 1 if repeat % 2 == 0 else -1]
        files = {}
        for project, is_plain in sides:
            took, files["default" if is_plain else "ours"] = generate(project, nodes, is_plain)
            seconds[f"generate {'plain' if is_plain else 'ours'}"].append(took)
        files["floor"] = work / "floor" / "bench_floor.py"
        files["floor"].parent.mkdir(exist_ok=True)
        floor_dag(files["ours"], settings, files["floor"])
        for kind in list(files)[:: 1 if repeat % 2 == 0 else -1]:
            result = parse(python, files[kind], kind, work / "airflow-home")
            seconds[f"parse {kind}"].append(result["seconds"])
            tasks[kind] = result["tasks"]
    medians = {key: round(statistics.median(values), 4) for key, values in seconds.items()}
    return {"nodes": nodes, "tasks": tasks, "seconds": medians, "runs_s": seconds}


def table(rows: list[dict], growth: dict | None, smoke: bool, repeats: int) -> list[str]:
    lines = [
        f"DAG generation and parsing, median of {repeats}{' (smoke run: the figures mean nothing)' if smoke else ''}",
        "| nodes | tasks ours / plain | generate ours s | plain s | ours ÷ plain "
        "| parse ours s | floor s | default s | ours ÷ floor | ours ÷ default |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        s = row["seconds"]
        lines.append(
            f"| {row['nodes']:,} | {row['tasks']['ours']:,} / {row['tasks']['default']:,} "
            f"| {s['generate ours']:.2f} | {s['generate plain']:.2f} | {s['generate ours'] / s['generate plain']:.2f} "
            f"| {s['parse ours']:.3f} | {s['parse floor']:.3f} | {s['parse default']:.3f} "
            f"| {s['parse ours'] / s['parse floor']:.2f} | {s['parse ours'] / s['parse default']:.2f} |"
        )
    if growth:
        low, high = rows[-2]["nodes"], rows[-1]["nodes"]
        lines.append(
            f"Growth {low:,} → {high:,} nodes ({high / low:g} is linear): "
            + ", ".join(f"{key} {value:.1f}x" for key, value in growth.items())
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="holds the bakes ours/ and plain/, each with its .venv")
    parser.add_argument("results", type=Path)
    parser.add_argument("airflow_python", type=Path, help="Airflow's Python, with Kedro beside it")
    parser.add_argument("--smoke", action="store_true", help="the smallest size, once: no figure to read")
    args = parser.parse_args()
    sizes, repeats = (SIZES[:1], 1) if args.smoke else (SIZES, REPEATS)
    work = args.work.resolve()
    began, load_before = time.perf_counter(), os.getloadavg()[0]
    prepare(work / "ours" / PACKAGE, plain=False)
    prepare(work / "plain" / PACKAGE, plain=True)
    settings = yaml.safe_load((work / "ours" / PACKAGE / "conf/base/airflow.yml").read_text())["default"]
    (work / "airflow-home").mkdir(exist_ok=True)
    if not args.smoke:  # untimed: the file system's caches warm up, and so does Airflow's home
        measure(work, args.airflow_python, sizes[0], 1, settings)
    rows = []
    for nodes in sizes:
        print(f"== {nodes:,} nodes, {repeats} repetition(s)", flush=True)
        rows.append(measure(work, args.airflow_python, nodes, repeats, settings))
        print(json.dumps({key: rows[-1][key] for key in ("nodes", "tasks", "seconds")}), flush=True)
    growth = None
    if len(rows) > 1:
        growth = {key: round(rows[-1]["seconds"][key] / rows[-2]["seconds"][key], 2) for key in rows[-1]["seconds"]}
    lines = table(rows, growth, args.smoke, repeats)
    print("\n".join(lines))
    report = {
        "smoke": args.smoke,
        "sizes": list(sizes),
        "repeats": repeats,
        "rows": rows,
        "growth": growth,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "total_s": round(time.perf_counter() - began, 1),
        "table": lines,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Results written to {args.results}")


if __name__ == "__main__":
    main()
