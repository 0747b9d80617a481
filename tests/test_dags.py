"""The generated DAGs in a real Airflow 3, installed apart from Kedro as Composer runs it (slow)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import bake, clean_env, run, uv

pytestmark = pytest.mark.slow

IMAGE = "europe-west1-docker.pkg.dev/my-gcp-project/kedro/spaceflights@sha256:" + "0" * 64
PROBES = Path(__file__).parent / "probes"
# Grouping off through an environment of its own, as a user would keep it.
NOGROUP = "default:\n  grouping: false\n  kedro_env: gcp\n"
EXPECTED_TASKS = {
    ("gcp", "__default__"): 5,
    ("gcp", "data_processing"): 3,
    ("gcp", "data_science"): 3,
    ("nogroup", "__default__"): 6,
    ("nogroup", "data_processing"): 3,
    ("nogroup", "data_science"): 3,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("dags"))
    (project / "conf/nogroup").mkdir()
    (project / "conf/nogroup/airflow.yml").write_text(NOGROUP)
    run(uv(), "sync", "--locked", cwd=project)
    return project


@pytest.fixture(scope="module")
def airflow_python(project, tmp_path_factory) -> Path:
    """Airflow's own environment, from the bake's deploy/airflow lock."""
    venv = tmp_path_factory.mktemp("airflow") / "venv"
    run(uv(), "sync", "--locked", cwd=project / "deploy/airflow", env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    return venv / "bin/python"


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [project / ".venv/bin/kedro", *args], cwd=project, env=clean_env(), capture_output=True, text=True, check=False
    )


def generate(project: Path, target: Path, env: str, *params: str) -> subprocess.CompletedProcess:
    return kedro(
        project,
        *("airflow", "create", "--all", "-j", "deploy/airflow_dag.j2", "-t", str(target), "--env", env),
        *("--params", ",".join([f"image={IMAGE}", *params])),
    )


@pytest.fixture(scope="module")
def dags(project, tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for env, params in (("gcp", ()), ("nogroup", ()), ("kubernetes", ("operator=kubernetes",))):
        folders[env] = tmp_path_factory.mktemp(env)
        result = generate(project, folders[env], "gcp" if env == "kubernetes" else env, *params)
        assert result.returncode == 0, result.stdout + result.stderr
    return folders


@pytest.fixture(scope="module")
def plans(project, tmp_path_factory) -> dict[str, dict]:
    """The plans the project's hooks hand the template, per environment."""
    plans = {}
    for env in ("gcp", "nogroup"):
        out = tmp_path_factory.mktemp("plans") / "plans.json"
        run(project / ".venv/bin/python", PROBES / "kedro_plans.py", out, env, cwd=project)
        plans[env] = json.loads(out.read_text())
    return plans


@pytest.fixture(scope="module")
def loaded(dags, airflow_python, tmp_path_factory) -> dict[str, dict]:
    """What a real Airflow makes of every generated file."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false")
    files = sorted(str(path) for folder in dags.values() for path in folder.glob("*.py"))
    run(airflow_python, PROBES / "airflow_dags.py", home / "report.json", *files, cwd=home, env=env)
    return json.loads((home / "report.json").read_text())


def dag_of(loaded: dict, folder: Path, pipeline: str) -> dict:
    """The DAG kedro-airflow wrote for ``pipeline`` into ``folder``, as Airflow loaded it."""
    env = "nogroup" if folder.name.startswith("nogroup") else "gcp"
    name = f"spaceflights_{env}{'' if pipeline == '__default__' else '_' + pipeline}_dag.py"
    report = loaded[str(folder / name)]
    assert report["errors"] == {}
    (dag,) = report["dags"].values()
    return dag


def test_every_dag_imports_with_no_error_and_a_unique_id(loaded):
    assert len(loaded) == 9
    assert all(report["errors"] == {} and len(report["dags"]) == 1 for report in loaded.values())
    ids = [dag_id for report in loaded.values() for dag_id in report["dags"]]
    assert len(set(ids)) == 6  # the kubernetes DAGs share the gcp ones' ids, in another folder


@pytest.mark.parametrize(("env", "pipeline"), list(EXPECTED_TASKS))
def test_tasks_commands_and_edges_are_the_plans(loaded, dags, plans, env, pipeline):
    plan, dag = plans[env][pipeline], dag_of(loaded, dags[env], pipeline)
    assert len(plan["tasks"]) == EXPECTED_TASKS[env, pipeline]
    assert list(dag["tasks"]) == [task["id"] for task in plan["tasks"]]
    for task in plan["tasks"]:
        assert dag["tasks"][task["id"]]["pod"]["command"] == task["command"]
        assert sorted(task["nodes"]) == task["selected"]  # `kedro run` picks exactly its nodes
        upstream = sorted(a for a, b in plan["edges"] if b == task["id"])
        assert dag["tasks"][task["id"]]["upstream"] == upstream
        assert task["id"] in dag["doc_md"] and ", ".join(task["nodes"]) in dag["doc_md"]
    assert dag["operators"] == ["GKEStartPodOperator"]
    assert set(dag["tags"]) == {"kedro", "spaceflights", pipeline, "gcp"}


def test_pods_are_built_by_the_provider_as_planned(loaded, dags, plans, project):
    machines = yaml.safe_load((project / "conf/base/airflow.yml").read_text())["default"]["machines"]
    for folder, operator in ((dags["gcp"], "GKEStartPodOperator"), (dags["kubernetes"], "KubernetesPodOperator")):
        dag = dag_of(loaded, folder, "__default__")
        assert dag["operators"] == [operator]
        for task in plans["gcp"]["__default__"]["tasks"]:
            pod = dag["tasks"][task["id"]]["pod"]
            assert pod["name"].startswith(task["pod_name"] + "-")
            assert pod["labels"]["app.kubernetes.io/name"] == "spaceflights"
            assert pod["labels"]["kedro.org/pipeline"] == "default"
            assert pod["annotations"] == {"kedro.org/nodes": ",".join(task["nodes"])}
            assert pod["resources"]["requests"] == machines[task["machine"]]["requests"]
            assert pod["resources"]["limits"] == machines[task["machine"]]["limits"]
            assert (pod["service_account"], pod["namespace"], pod["image"]) == ("kedro-runner", "spaceflights", IMAGE)
    shuttles = plans["gcp"]["__default__"]["tasks"][1]
    assert (shuttles["id"], shuttles["machine"]) == ("shuttles", "medium")


def test_generated_dags_are_ruff_clean_and_import_only_airflow(project, dags):
    ruff = shutil.which("ruff", path=Path(sys.executable).parent) or "ruff"  # the lint group's
    for folder in dags.values():
        subprocess.run([ruff, "check", "--no-cache", "--config", project / "pyproject.toml", folder], check=True)
        subprocess.run(
            [ruff, "format", "--check", "--no-cache", "--config", project / "pyproject.toml", folder], check=True
        )
        for path in folder.glob("*.py"):
            imports = {line.split()[1] for line in path.read_text().splitlines() if line.startswith(("import", "from"))}
            assert {name.split(".")[0] for name in imports} == {"airflow", "datetime", "kubernetes"}


def test_generating_again_gives_the_same_bytes(project, dags, tmp_path):
    assert generate(project, tmp_path, "gcp").returncode == 0
    for path in dags["gcp"].glob("*.py"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


@contextlib.contextmanager
def changed(path: Path, text: str):
    """``path`` holding ``text``, then as it was (or gone, if it was not there)."""
    before = path.read_text() if path.exists() else None
    path.write_text(text)
    try:
        yield
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before)


def test_a_cycle_stops_kedro_run_and_generation_leaving_no_file(project, tmp_path):
    pipeline = project / "src/spaceflights/pipelines/data_science/pipeline.py"
    message = "grouping makes tasks depend on themselves: airflow.split -> train_model_node -> airflow.split."
    name = 'name="evaluate_model_node",\n'
    tagged = f'{name}                tags=["airflow.split"],\n'
    with changed(pipeline, pipeline.read_text().replace(name, tagged)):
        result = generate(project, tmp_path / "dags", "gcp")
        assert result.returncode != 0 and message in result.stdout + result.stderr
        assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())
        result = kedro(project, "run", "--pipelines", "data_science")
        assert result.returncode != 0 and message in result.stdout + result.stderr


def test_a_dataset_lost_between_pods_stops_generation_leaving_no_file(project, tmp_path):
    with changed(project / "conf/gcp/catalog.yml", "X_train:\n  type: MemoryDataset\n"):
        result = generate(project, tmp_path / "dags", "gcp")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert (
        "Pipeline `__default__`: dataset `X_train` goes from task `split` to task `train_model_node` but is a "
        "MemoryDataset in environment `gcp`, so it would be lost between the pods." in output
    )
    assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("default:\n  schedule_interval: '@daily'\n", "`schedule_interval` is not a setting: Airflow 3 removed it"),
        ("default:\n  retries: many\n", "`retries` must be int, not 'many'."),
        ("data_sience:\n  retries: 2\n", "`data_sience` is not `default` nor a registered pipeline"),
    ],
)
def test_a_bad_setting_names_the_file_and_stops_generation(project, tmp_path, yaml_text, message):
    settings = project / "conf/gcp/airflow.yml"
    with changed(settings, yaml_text):
        result = generate(project, tmp_path / "dags", "gcp")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0 and f"{settings}: " in output and message in output, output
    assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())


def test_kedro_run_params_are_the_pipelines_not_airflow_settings(project):
    result = kedro(project, "run", "--params", "model_options.test_size=0.3")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nox_generate_refuses_without_an_image_then_writes_dags(project):
    nox = [shutil.which("nox") or "nox", "-s", "generate", "--"]
    env = clean_env()
    refused = subprocess.run(nox, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "No image to run: build/image is missing" in refused.stdout + refused.stderr
    assert not (project / "dags").exists()
    run(*nox, "--image", IMAGE, "--pipelines", "__default__,data_science", cwd=project, env=env)
    assert sorted(p.name for p in (project / "dags").iterdir()) == [
        "spaceflights_gcp_dag.py",
        "spaceflights_gcp_data_science_dag.py",
    ]
    assert not any((project / "build").iterdir())  # nothing left half-way
