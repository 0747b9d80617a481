"""Every benchmark session runs on the template as it is, in smoke mode.

`nox -s bench_<name> -- --smoke` runs each at its smallest size, once, and writes
build/bench/<name>.json; its figures mean nothing, so none is asserted here: only that
the session runs and reports what a full run reports.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import time

import pytest
from components import ensure_base_image, require_docker
from conftest import ROOT, TEMPLATE, run

BENCH = ROOT / "build" / "bench"
# What each session writes, and the keys its report has.
REPORTS = {
    "bench_dags": ("dags.json", {"smoke", "sizes", "repeats", "rows", "growth", "machine", "total_s", "table"}),
    "bench_mlflow": ("mlflow.json", {"smoke", "machine", "start_task", "dag_run", "total_s", "table"}),
    "bench_image": (
        "image.json",
        {"smoke", "no_cache", "python", "base_image", "images", "ratios", "targets", "table"},
    ),
}


def smoke_run(session: str) -> dict:
    """Run ``nox -s <session> -- --smoke`` from the template's root; return its fresh report."""
    name, keys = REPORTS[session]
    started = time.time()
    run(sys.executable, "-m", "nox", "--non-interactive", "-s", session, "--", "--smoke", cwd=ROOT)
    report_file = BENCH / name
    assert report_file.stat().st_mtime >= started, f"{session} left {report_file} as it was"
    report = json.loads(report_file.read_text())
    assert keys <= set(report), f"{session}'s report lacks {keys - set(report)}"
    assert report["smoke"] is True
    assert report["table"] and all(isinstance(line, str) for line in report["table"])
    return report


@pytest.mark.slow
def test_bench_dags_runs_in_smoke_mode():
    report = smoke_run("bench_dags")
    (row,) = report["rows"]
    assert (report["sizes"], report["repeats"], report["growth"]) == ([100], 1, None)
    assert row["nodes"] == 100
    assert set(row["tasks"]) == {"ours", "floor", "default"}
    assert row["tasks"]["ours"] == row["tasks"]["floor"], "the floor has our DAG's tasks"
    assert row["tasks"]["default"] == 100, "kedro-airflow's DAG: one task per node"
    assert set(row["seconds"]) == {"generate ours", "generate plain", "parse ours", "parse floor", "parse default"}


@pytest.mark.slow
def test_bench_mlflow_runs_in_smoke_mode():
    report = smoke_run("bench_mlflow")
    starts, dags = report["start_task"], report["dag_run"]
    assert starts["repeats"] == 1
    assert {mode: {case: len(runs) for case, runs in cases.items()} for mode, cases in starts["seconds"].items()} == {
        mode: {"create": 1, "found on retry": 1} for mode in ("worker", "pod")
    }
    assert (dags["pipeline"], dags["repeats"]) == ("data_processing", 1)
    assert {label: len(runs) for label, runs in dags["runs"].items()} == {"on": 1, "off": 1}
    assert set(dags["runs"]["on"][0]) == {"wall_s", "tasks_s", "start_task_s", "pipeline_tasks"}


@pytest.mark.slow
def test_bench_image_runs_in_smoke_mode():
    require_docker()
    ensure_base_image(TEMPLATE["python_version"][0])
    report = smoke_run("bench_image")
    images = report["images"]
    assert set(images) == {"baked Dockerfile", "plain pip install"}
    assert len(images["baked Dockerfile"]["rebuild_runs_s"]) == 1
    assert report["no_cache"] is False
    assert set(report["ratios"]) == set(report["targets"]) == {"size_vs_plain", "rebuild_vs_full"}


def test_the_readme_table_of_sessions_is_the_noxfiles():
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = {
        function.name
        for function in tree.body
        if isinstance(function, ast.FunctionDef)
        and any("nox.session" in ast.unparse(decorator) for decorator in function.decorator_list)
    }
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Sessions\n", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)) == sessions
    assert {name for name in sessions if name.startswith("bench_")} == set(REPORTS)
