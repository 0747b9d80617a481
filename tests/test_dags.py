"""The generated DAGs in a real Airflow 3, installed apart from Kedro as Composer runs it (slow).

They are written as `nox -s generate` writes them, by the bake's tools/dags.py, which
puts the MLflow helper module the DAGs import beside them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
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
PIPELINES = "__default__,data_processing,data_science"  # `--all` would add mlflow_start's own DAG
AUDIENCE = "123456789012-iap0abcdef.apps.googleusercontent.com"  # an IAP OAuth client id
LOCAL_MLFLOW = "http://127.0.0.1:5000"
# Grouping off through an environment of its own, as a user would keep it.
NOGROUP = "default:\n  grouping: false\n  kedro_env: gcp\n"
# Folder: (Kedro environment, pipelines, --params besides the image). The Kubernetes
# ones sit behind Identity-Aware Proxy; local is what `nox -s deploy` writes.
VARIANTS = {
    "gcp": ("gcp", PIPELINES, ()),
    "gcp-pod": ("gcp", "__default__", ("mlflow_start=pod",)),
    "kubernetes": ("gcp", "__default__", ("operator=kubernetes", f"mlflow_iap_audience={AUDIENCE}")),
    "kubernetes-pod": (
        "gcp",
        "__default__",
        ("operator=kubernetes", "mlflow_start=pod", f"mlflow_iap_audience={AUDIENCE}"),
    ),
    "nogroup": ("nogroup", PIPELINES, ()),
    "local": ("local", "__default__", ("operator=local", f"mlflow_tracking_uri={LOCAL_MLFLOW}")),
}
EXPECTED_TASKS = {
    ("gcp", "__default__"): 5,
    ("gcp", "data_processing"): 3,
    ("gcp", "data_science"): 3,
    ("nogroup", "__default__"): 6,
    ("nogroup", "data_processing"): 3,
    ("nogroup", "data_science"): 3,
}
START, END = "mlflow_start", "mlflow_end"
HELPER = "spaceflights_mlflow"
RUN_ID_FROM_START = "{{ ti.xcom_pull(task_ids='mlflow_start') }}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("dags"))
    (project / "conf/nogroup").mkdir()
    (project / "conf/nogroup/airflow.yml").write_text(NOGROUP)
    run(uv(), "sync", "--locked", cwd=project)
    return project.resolve()  # as the local DAG names it


@pytest.fixture(scope="module")
def airflow_python(project, tmp_path_factory) -> Path:
    """Airflow's own environment, from the bake's deploy/airflow lock."""
    venv = tmp_path_factory.mktemp("airflow") / "venv"
    run(uv(), "sync", "--locked", cwd=project / "deploy/airflow", env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    return venv / "bin/python"


def project_env(project: Path) -> dict[str, str]:
    """The environment `nox -s generate` gives tools/dags.py: the project's `kedro` first on PATH."""
    return clean_env(PATH=f"{project / '.venv/bin'}{os.pathsep}{os.environ['PATH']}")


def generate(project: Path, target: Path, env: str, pipelines: str, *params: str) -> subprocess.CompletedProcess:
    """Write DAGs into ``target`` as `nox -s generate` does, through the bake's tools/dags.py."""
    command = [project / ".venv/bin/python", "tools/dags.py", target, "--env", env, "--pipelines", pipelines]
    command += [arg for param in (f"image={IMAGE}", *params) for arg in ("--params", param)]
    return subprocess.run(
        [str(part) for part in command],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        check=False,
    )


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [project / ".venv/bin/kedro", *args], cwd=project, env=clean_env(), capture_output=True, text=True, check=False
    )


def create(project: Path, target: Path, env: str) -> subprocess.CompletedProcess:
    """`kedro airflow create` itself, which must refuse before it writes any file."""
    return kedro(
        project,
        *("airflow", "create", "--pipelines", PIPELINES, "-j", "deploy/airflow_dag.j2", "-t", str(target)),
        *("--env", env, "--params", f"image={IMAGE}"),
    )


@pytest.fixture(scope="module")
def dags(project, tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for name, (env, pipelines, params) in VARIANTS.items():
        folders[name] = tmp_path_factory.mktemp(name)
        result = generate(project, folders[name], env, pipelines, *params)
        assert result.returncode == 0, result.stdout + result.stderr
    return folders


@pytest.fixture(scope="module")
def plans(project, tmp_path_factory) -> dict[str, dict]:
    """The plans the project's hooks hand the template, per environment."""
    out = tmp_path_factory.mktemp("plans") / "plans.json"
    run(project / ".venv/bin/python", PROBES / "kedro_plans.py", out, "gcp", "nogroup", "local", cwd=project)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def loaded(dags, airflow_python, tmp_path_factory) -> dict[str, dict]:
    """What a real Airflow makes of every generated folder, file by file."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false")
    run(airflow_python, PROBES / "airflow_dags.py", home / "report.json", *dags.values(), cwd=home, env=env)
    return json.loads((home / "report.json").read_text())


@pytest.fixture(scope="module")
def mlflow_settings(project) -> dict:
    return yaml.safe_load((project / "conf/base/airflow.yml").read_text())["default"]


def dag_of(loaded: dict, folder: Path, pipeline: str) -> dict:
    """The DAG tools/dags.py wrote for ``pipeline`` into ``folder``, as Airflow loaded it."""
    (path,) = (p for p in folder.glob("*_dag.py") if pipeline_of(p) == pipeline)
    report = loaded[str(path)]
    assert report["errors"] == {}
    (dag,) = report["dags"].values()
    return dag


def pipeline_of(path: Path) -> str:
    """The pipeline of a DAG file kedro-airflow names `<package>[_<env>][_<pipeline>]_dag.py`."""
    for pipeline in ("data_processing", "data_science"):
        if path.name.endswith(f"_{pipeline}_dag.py"):
            return pipeline
    return "__default__"


def kedro_tasks(dag: dict) -> dict[str, dict]:
    return {task_id: task for task_id, task in dag["tasks"].items() if task_id not in {START, END}}


def test_every_dag_and_the_helper_import_with_no_error_and_a_unique_id(loaded, dags, project):
    assert sorted(loaded) == sorted(str(path) for folder in dags.values() for path in folder.glob("*.py"))
    assert all(report["errors"] == {} for report in loaded.values())
    helper = (project / "src/spaceflights/mlflow_runs.py").read_bytes()
    dag_files = 0
    for folder in dags.values():
        assert (folder / f"{HELPER}.py").read_bytes() == helper
        assert loaded[str(folder / f"{HELPER}.py")]["dags"] == {}
        for path in folder.glob("*_dag.py"):
            assert len(loaded[str(path)]["dags"]) == 1
            dag_files += 1
    assert dag_files == 10
    ids = [dag_id for report in loaded.values() for dag_id in report["dags"]]
    assert len(set(ids)) == 7  # the pod and kubernetes DAGs share the gcp ones' ids, in other folders


@pytest.mark.parametrize(("env", "pipeline"), list(EXPECTED_TASKS))
def test_tasks_commands_and_edges_are_the_plans(loaded, dags, plans, env, pipeline):
    plan, dag = plans[env][pipeline], dag_of(loaded, dags[env], pipeline)
    assert len(plan["tasks"]) == EXPECTED_TASKS[env, pipeline]
    assert list(dag["tasks"]) == [task["id"] for task in plan["tasks"]] + [START, END]
    for task in plan["tasks"]:
        assert dag["tasks"][task["id"]]["pod"]["command"] == task["command"]
        assert sorted(task["nodes"]) == task["selected"]  # `kedro run` picks exactly its nodes
        upstream = sorted(a for a, b in plan["edges"] if b == task["id"]) or [START]
        assert dag["tasks"][task["id"]]["upstream"] == upstream
        assert task["id"] in dag["doc_md"] and ", ".join(task["nodes"]) in dag["doc_md"]
    assert dag["operators"] == ["GKEStartPodOperator", "PythonOperator"]
    assert set(dag["tags"]) == {"kedro", "spaceflights", pipeline, "gcp"}


def test_pods_are_built_by_the_provider_as_planned(loaded, dags, plans, project):
    machines = yaml.safe_load((project / "conf/base/airflow.yml").read_text())["default"]["machines"]
    plan = plans["gcp"]["__default__"]
    for name, operator in [
        ("gcp", "GKEStartPodOperator"),
        ("gcp-pod", "GKEStartPodOperator"),
        ("kubernetes", "KubernetesPodOperator"),
        ("kubernetes-pod", "KubernetesPodOperator"),
    ]:
        dag = dag_of(loaded, dags[name], "__default__")
        pod_mode = name.endswith("-pod")
        assert dag["operators"] == ([operator] if pod_mode else [operator, "PythonOperator"])
        planned = plan["tasks"] + ([plan["start"], plan["end"]] if pod_mode else [])
        for task in planned:
            pod = dag["tasks"][task["id"]]["pod"]
            assert pod["name"].startswith(task["pod_name"] + "-")
            assert pod["labels"]["app.kubernetes.io/name"] == "spaceflights"
            assert pod["labels"]["kedro.org/pipeline"] == "default"
            if task["nodes"]:
                assert pod["annotations"] == {"kedro.org/nodes": ",".join(task["nodes"])}
            assert pod["resources"]["requests"] == machines[task["machine"]]["requests"]
            assert pod["resources"]["limits"] == machines[task["machine"]]["limits"]
            assert (pod["service_account"], pod["namespace"], pod["image"]) == ("kedro-runner", "spaceflights", IMAGE)
    shuttles = plan["tasks"][1]
    assert (shuttles["id"], shuttles["machine"]) == ("shuttles", "medium")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_one_mlflow_run_wraps_every_dag_run(loaded, dags, plans, mlflow_settings, name):
    """The start task comes first, every task logs into its run, the end tears it down."""
    env, pipelines, params = VARIANTS[name]
    tracking_uri = LOCAL_MLFLOW if name == "local" else mlflow_settings["mlflow_tracking_uri"]
    audience = AUDIENCE if f"mlflow_iap_audience={AUDIENCE}" in params else None
    assert mlflow_settings["mlflow_start"] == "airflow"  # the default; the -pod folders override it
    for pipeline in pipelines.split(","):
        plan, dag = plans[env][pipeline], dag_of(loaded, dags[name], pipeline)
        tasks, start, end = kedro_tasks(dag), dag["tasks"][START], dag["tasks"][END]
        assert [plan["start"]["id"], plan["end"]["id"]] == [START, END]
        assert list(tasks) == [task["id"] for task in plan["tasks"]]
        roots = {task_id for task_id in tasks if not any(b == task_id for _, b in plan["edges"])}
        leaves = {task_id for task_id in tasks if not any(a == task_id for a, _ in plan["edges"])}
        # First: upstream of exactly the root tasks. Last: after the leaves, a teardown of the start.
        assert (start["upstream"], set(start["downstream"])) == ([], roots | {END})
        assert (start["is_setup"], start["is_teardown"], start["do_xcom_push"]) == (True, False, True)
        assert (set(end["upstream"]), end["downstream"]) == (leaves | {START}, [])
        assert (end["is_setup"], end["is_teardown"]) == (False, True)
        assert end["trigger_rule"] == "all_done_setup_success"  # runs whatever happened upstream
        run_env = {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": mlflow_settings["mlflow_experiment"],
            "MLFLOW_RUN_NAME": dag["render_run_id"],
            "MLFLOW_RUN_ID": f"<XCom of {START}>",
        } | ({"MLFLOW_IAP_AUDIENCE": audience} if audience else {})
        for task_id, task in tasks.items():
            assert task["upstream"] == (sorted(a for a, b in plan["edges"] if b == task_id) or [START])
            assert not (task["is_setup"] or task["is_teardown"] or task["do_xcom_push"])
            assert task["trigger_rule"] == "all_success"
            assert task["env"]["MLFLOW_RUN_ID"] == RUN_ID_FROM_START
            assert {key: value for key, value in task["rendered_env"].items() if key.startswith("MLFLOW_")} == run_env
        if "mlflow_start=pod" in params:
            operator = dag["operators"][0]
            assert (start["operator"], end["operator"]) == (operator, operator)
            assert dag["user_defined_macros"] == ["dag_run_status"]
            assert start["pod"]["command"] == plan["start"]["command"]
            assert start["pod"]["containers"] == ["base", "airflow-xcom-sidecar"]  # hands Airflow the run id
            assert start["rendered_env"] == {key: value for key, value in run_env.items() if key != "MLFLOW_RUN_ID"} | {
                "AIRFLOW_DAG_ID": plan["dag_id"],
                "AIRFLOW_RUN_ID": dag["render_run_id"],
            }
            assert end["pod"]["command"] == plan["end"]["command"]
            assert not end["do_xcom_push"]
            assert end["rendered_env"] == run_env | {"MLFLOW_RUN_STATUS": "FINISHED"}  # every task succeeded
        else:
            assert (start["operator"], end["operator"]) == ("PythonOperator", "PythonOperator")
            assert dag["user_defined_macros"] == []
            assert start["python_callable"] == f"{HELPER}.start_run"
            assert start["rendered_op_kwargs"] == {
                "tracking_uri": tracking_uri,
                "audience": audience,
                "experiment": mlflow_settings["mlflow_experiment"],
                "dag_id": plan["dag_id"],
                "airflow_run_id": dag["render_run_id"],
            }
            assert end["python_callable"] == f"{HELPER}.end_dag_run"
            assert end["op_kwargs"] == {"tracking_uri": tracking_uri, "audience": audience, "start_task": START}


def test_the_local_dag_runs_the_plans_commands_in_the_project(loaded, dags, plans, project):
    plan, dag = plans["local"]["__default__"], dag_of(loaded, dags["local"], "__default__")
    assert dag["operators"] == ["BashOperator", "PythonOperator"]
    assert set(dag["tags"]) == {"kedro", "spaceflights", "__default__", "local"}
    for task in plan["tasks"]:
        bash = dag["tasks"][task["id"]]
        assert shlex.split(bash["bash_command"]) == task["command"]
        assert task["command"][:8] == ["python", "-m", "kedro", "run", "--pipelines", "__default__", "--env", "local"]
        assert (bash["cwd"], bash["append_env"]) == (str(project), True)
        assert bash["env"]["VIRTUAL_ENV"] == str(project / ".venv")
        assert bash["env"]["PATH"].split(os.pathsep)[0] == str(project / ".venv/bin")  # its python first


def test_generated_dags_are_ruff_clean_and_import_only_airflow_and_the_helper(project, dags):
    ruff = shutil.which("ruff", path=Path(sys.executable).parent) or "ruff"  # the lint group's
    for name, folder in dags.items():
        subprocess.run([ruff, "check", "--no-cache", "--config", project / "pyproject.toml", folder], check=True)
        subprocess.run(
            [ruff, "format", "--check", "--no-cache", "--config", project / "pyproject.toml", folder], check=True
        )
        allowed = {"airflow", "datetime", HELPER} | ({"os", "shlex"} if name == "local" else {"kubernetes"})
        for path in folder.glob("*_dag.py"):
            imports = {line.split()[1] for line in path.read_text().splitlines() if line.startswith(("import", "from"))}
            assert {name.split(".")[0] for name in imports} == allowed, path


def test_generating_again_gives_the_same_bytes(project, dags, tmp_path):
    env, pipelines, params = VARIANTS["gcp"]
    result = generate(project, tmp_path, env, pipelines, *params)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in dags["gcp"].iterdir())
    for path in dags["gcp"].iterdir():
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
        result = create(project, tmp_path / "dags", "gcp")
        assert result.returncode != 0 and message in result.stdout + result.stderr
        assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())
        result = kedro(project, "run", "--pipelines", "data_science")
        assert result.returncode != 0 and message in result.stdout + result.stderr


def test_a_dataset_lost_between_pods_stops_generation_leaving_no_file(project, tmp_path):
    with changed(project / "conf/gcp/catalog.yml", "X_train:\n  type: MemoryDataset\n"):
        result = create(project, tmp_path / "dags", "gcp")
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
        (
            "default:\n  operator: local\n  mlflow_start: pod\n",
            "`mlflow_start: pod` needs pods, and `operator` is local.",
        ),
    ],
)
def test_a_bad_setting_names_the_file_and_stops_generation(project, tmp_path, yaml_text, message):
    settings = project / "conf/gcp/airflow.yml"
    with changed(settings, yaml_text):
        result = create(project, tmp_path / "dags", "gcp")
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
        f"{HELPER}.py",
    ]
    assert not any((project / "build").iterdir())  # nothing left half-way
