"""Benchmark DAG generation and parsing on synthetic pipelines (`nox -s bench_dags`).

Two bakes of the default project get the same random pipelines of 100, 1,000 and
5,000 nodes (about 60% of them in contiguous groups): ours, with the tagging
checks, the task plan and our template, and a plain one, without our hooks,
registry check and airflow.yml, rendered with kedro-airflow's own template. The
pairs run interleaved, in one run, so the machine's noise hits both alike.

Measured:
- generation: wall time of `kedro airflow create`, ours ÷ plain;
- cold parse: a fresh Airflow process parses the DAG file (with Airflow and the
  operator's module already imported, as in a DAG processor that has parsed
  other DAGs); ours ÷ a hand-written DAG with the same operators and tasks and
  nothing else (the floor), and ours ÷ kedro-airflow's default DAG;
- growth of each from 1,000 to 5,000 nodes (5 means linear).

Usage: python bench_dags.py <workdir> <results.json> <python of Airflow (with Kedro, for the default DAG)>
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

SIZES = (100, 1000, 5000)
REPEATS = 3
SYNTHETIC = '''"""A synthetic pipeline for the benchmark: BENCH_NODES nodes of a random DAG."""

import os
import random

from kedro.pipeline import Node, Pipeline


def step(*inputs):
    return 0


def create_pipeline(**kwargs) -> Pipeline:
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
CATALOG = "bench_{n}:\n  type: pickle.PickleDataset\n  filepath: data/bench/{n}.pkl\n"
PARSE = """
import importlib, json, sys, time
for module in sys.argv[2:]:
    importlib.import_module(module)
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
print(json.dumps({"seconds": seconds, "tasks": sum(len(d.tasks) for d in bag.dags.values())}))
"""
PRELOAD = {
    "ours": ["airflow.sdk", "airflow.providers.google.cloud.operators.kubernetes_engine", "kubernetes.client"],
    "floor": ["airflow.sdk", "airflow.providers.google.cloud.operators.kubernetes_engine", "kubernetes.client"],
    "default": ["airflow.sdk", "kedro.framework.session"],
}
FLOOR_TASK = """    {var} = GKEStartPodOperator(
        task_id={id!r},
        name={pod!r},
        cmds={cmds!r},
        container_resources=k8s.V1ResourceRequirements(requests={requests!r}, limits={limits!r}),
        annotations={annotations!r},
        project_id="p", location="europe-west1", cluster_name="c", namespace="n",
        service_account_name="sa", image="i", image_pull_policy="IfNotPresent",
        labels={labels!r}, startup_timeout_seconds=600, on_finish_action="delete_pod",
    )
"""


def env(**extra: str) -> dict[str, str]:
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "NOX_CURRENT_SESSION"}
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def prepare(project: Path, plain: bool) -> None:
    bench = project / "src/spaceflights/pipelines/bench"
    bench.mkdir()
    (bench / "__init__.py").write_text(SYNTHETIC)
    (project / "conf/local/catalog_bench.yml").write_text(CATALOG)
    if plain:  # kedro-airflow out of the box: no hooks, no registry check, no airflow.yml
        (project / "conf/base/airflow.yml").unlink()
        (project / "src/spaceflights/settings.py").write_text(
            'CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local"}\n'
        )
        registry = project / "src/spaceflights/pipeline_registry.py"
        registry.write_text(registry.read_text().replace("    check_tagging(pipelines)\n", ""))


def generate(project: Path, nodes: int, out: Path, template: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [project / ".venv/bin/kedro", "airflow", "create", "--pipelines", "bench", "-t", out, *template],
        cwd=project,
        env=env(BENCH_NODES=str(nodes)),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def floor_dag(plan: dict, machines: dict, path: Path) -> None:
    """The hand-written floor: the same operators and tasks, written out, nothing else."""
    lines = [
        "from datetime import datetime\n",
        "from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator",
        "from airflow.sdk import DAG",
        "from kubernetes.client import models as k8s\n",
        'with DAG(dag_id="floor", schedule=None, start_date=datetime(2026, 1, 1)):',
    ]
    var = {task["id"]: f"t{i}" for i, task in enumerate(plan["tasks"])}
    for task in plan["tasks"]:
        machine = machines[task["machine"]]
        lines.append(
            FLOOR_TASK.format(
                var=var[task["id"]],
                id=task["id"],
                pod=task["pod_name"],
                cmds=task["command"],
                requests=machine.get("requests"),
                limits=machine.get("limits"),
                annotations={"kedro.org/nodes": ",".join(task["nodes"])},
                labels={"app.kubernetes.io/name": "spaceflights", "kedro.org/pipeline": "bench"},
            )
        )
    lines += [f"    {var[a]} >> {var[b]}" for a, b in plan["edges"]]
    path.write_text("\n".join(lines) + "\n")


def parse(python: Path, dag: Path, kind: str, home: Path) -> dict:
    result = subprocess.run(
        [python, "-c", PARSE, dag, *PRELOAD[kind]],
        env=env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false"),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(work: Path, results: Path, python: Path) -> None:
    ours, plain = work / "ours/spaceflights", work / "plain/spaceflights"
    prepare(ours, plain=False)
    prepare(plain, plain=True)
    machines = yaml.safe_load((ours / "conf/base/airflow.yml").read_text())["default"]["machines"]
    home = work / "airflow_home"
    home.mkdir(exist_ok=True)
    rows = []
    for nodes in SIZES:
        print(f"== {nodes} nodes", flush=True)
        gen = {"generate ours": [], "generate plain": []}
        for _ in range(REPEATS):
            gen["generate ours"].append(generate(ours, nodes, work / "dags/ours", ["-j", "deploy/airflow_dag.j2"]))
            gen["generate plain"].append(generate(plain, nodes, work / "dags/default", []))
        plan_file = work / "plan.json"
        subprocess.run(
            [ours / ".venv/bin/python", Path(__file__).parents[1] / "tests/probes/kedro_plans.py", plan_file, "local"],
            cwd=ours,
            env=env(BENCH_NODES=str(nodes)),
            check=True,
            capture_output=True,
        )
        plan = json.loads(plan_file.read_text())["bench"]
        floor_dag(plan, machines, work / "dags/floor.py")
        files = {
            "ours": next((work / "dags/ours").glob("*.py")),
            "floor": work / "dags/floor.py",
            "default": next((work / "dags/default").glob("*.py")),
        }
        parsed = {f"parse {kind}": [] for kind in files}
        tasks = {}
        for _ in range(REPEATS):
            for kind, path in files.items():
                result = parse(python, path, kind, home)
                parsed[f"parse {kind}"].append(result["seconds"])
                tasks[kind] = result["tasks"]
        med = {k: statistics.median(v) for k, v in (gen | parsed).items()}
        rows.append({"nodes": nodes, "tasks": tasks, "seconds": med})
        print(json.dumps(rows[-1]), flush=True)

    table = [
        "| nodes | tasks ours / default | generation ours ÷ plain | parse ours ÷ floor | parse ours ÷ default |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        s = row["seconds"]
        table.append(
            f"| {row['nodes']:,} | {row['tasks']['ours']:,} / {row['tasks']['default']:,} "
            f"| {s['generate ours'] / s['generate plain']:.2f} | {s['parse ours'] / s['parse floor']:.2f} "
            f"| {s['parse ours'] / s['parse default']:.2f} |"
        )
    growth = {key: rows[-1]["seconds"][key] / rows[-2]["seconds"][key] for key in rows[-1]["seconds"]}
    table.append("")
    table.append(
        "Growth 1,000 → 5,000 nodes (5 is linear): " + ", ".join(f"{key} {value:.1f}x" for key, value in growth.items())
    )
    print("\n".join(table))
    results.write_text(json.dumps({"rows": rows, "growth": growth, "table": table}, indent=2) + "\n")
    print(f"Results written to {results}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
