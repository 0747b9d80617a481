"""The generated DAGs in real Airflows, installed apart from Kedro as Composer runs them (slow).

Every test that loads DAGs runs in two Airflows: the oldest the DAGs support
(tests/airflow-oldest: 3.1.0 with the providers released beside it, as the oldest
Composer 3 image has them) and the newest, the bake's own lock
(src/<package>_deploy/airflow). The DAGs are written once for the module, as `nox -s
generate` writes them (`python -m spaceflights_deploy generate`), and each Airflow
loads all of them once. Two bakes: the default one, and one by an author of
non-ASCII name with a pipeline of hostile names and an environment of hostile
settings, which must stay text all the way to the pods' commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import PROJECT_TEMPLATE, ROOT, bake, clean_env, require, run, uv
from pod_security import restricted_violations

pytestmark = pytest.mark.slow

IMAGE = "europe-west1-docker.pkg.dev/my-gcp-project/kedro/spaceflights@sha256:" + "0" * 64
PROBES = Path(__file__).parent / "probes"
# Each Airflow's lock: the oldest the DAGs support, and the bake's own (the newest).
AIRFLOWS = {"oldest": ROOT / "tests/airflow-oldest", "newest": Path("src/spaceflights_deploy/airflow")}
# The Kubernetes API the pods are checked against: the newest kubernetes-validate
# ships, which GKE's rapid channel offers weeks after its release.
KUBERNETES_VERSION = "1.37.0"
PIPELINES = "__default__,data_processing,data_science"
AUDIENCE = "123456789012-iap0abcdef.apps.googleusercontent.com"  # an IAP OAuth client id
LOCAL_MLFLOW = "http://127.0.0.1:5000"  # base mlflow.yml reads it; a sqlite URI is refused
# Grouping off through an environment of its own, as a user would keep it, with
# shorter timeouts: a machine's own wins over the default.
NOGROUP = """\
default:
  grouping: false
  kedro_env: gcp
  execution_timeout: 30
  machines:
    medium:
      execution_timeout: 45
"""
# Folder: (Kedro environment, pipelines, --params). The Kubernetes one starts and
# ends the MLflow run in pods, behind Identity-Aware Proxy, and mounts the API token;
# local is what `nox -s deploy` writes (it needs no image). Each generation is a
# `kedro airflow create` of some 20 s: the variants cover the template's branches.
VARIANTS = {
    "gcp": ("gcp", PIPELINES, ()),
    # The gke operator: GKEStartPodOperator on a GKE cluster of one's own (the default is Composer 3's).
    "gke": (
        "gcp",
        "__default__",
        ("operator=gke", "cluster=spaceflights-gke", "namespace=spaceflights", "service_account=kedro-runner"),
    ),
    "kubernetes-pod": (
        "gcp",
        "__default__",
        (
            "mlflow_tasks_on=pod",
            f"mlflow_iap_audience={AUDIENCE}",
            "mount_service_account_token=true",
        ),
    ),
    "nogroup": ("nogroup", PIPELINES, ()),
    "off": ("nogroup", "__default__", ("mlflow_tasks_on=off",)),
    "local": ("local", "__default__", ("operator=local",)),
}
POD_VARIANTS = [name for name, (_, _, params) in VARIANTS.items() if "operator=local" not in params]
MLFLOW_VARIANTS = [name for name in VARIANTS if name != "off"]
EXPECTED_TASKS = {
    ("gcp", "__default__"): 5,
    ("gcp", "data_processing"): 3,
    ("gcp", "data_science"): 3,
    ("nogroup", "__default__"): 6,
    ("nogroup", "data_processing"): 3,
    ("nogroup", "data_science"): 3,
}
START, END = "start_mlflow_run", "end_mlflow_run"
HELPER_SOURCE = "src/spaceflights_deploy/mlflow_runs.py"
# Refusals, each in a Kedro environment of its own so that they run side by side:
# (the environment's files, what the message says).
REFUSED = {
    "misspelled": (
        {"airflow.yml": "data_sience:\n  retries: 2\n"},
        "`data_sience` is not `default` nor a registered pipeline",
    ),
    "server-in-airflow-yml": (
        {"airflow.yml": f"default:\n  mlflow_tracking_uri: {LOCAL_MLFLOW}\n"},
        "`mlflow_tracking_uri` is not a setting: the server is `server.mlflow_tracking_uri` in conf/<env>/mlflow.yml",
    ),
    "lost": (
        {
            "catalog.yml": "X_train:\n  type: MemoryDataset\n",
            "mlflow.yml": f"server:\n  mlflow_tracking_uri: {LOCAL_MLFLOW}\n",
        },
        "Pipeline `__default__`: dataset `X_train` goes from task `split` to task `train_model_node` but is a "
        "MemoryDataset in environment `lost`, so it would be lost between the pods.",
    ),
    "shared": (
        {
            "catalog.yml": "X_train:\n  type: pickle.PickleDataset\n  filepath: data/05_model_input/X_train.pickle\n",
            "mlflow.yml": f"server:\n  mlflow_tracking_uri: {LOCAL_MLFLOW}\n",
        },
        "Pipeline `__default__`: dataset `X_train` goes from task `split` to task `train_model_node` but its "
        "filepath in environment `shared`, data/05_model_input/X_train.pickle, is the same for every DAG run, "
        "so runs that overlap would overwrite each other's copy. Start it with ${dag_run:${globals:data_root}}/",
    ),
}

# Hostile input: Kedro checks node names and tags, not namespaces, so a namespace
# carries every character that could break out of a Python string, a Jinja template,
# a Markdown cell or a shell word. MARKER stands for the file its code would create.
OWNER = "Zoë 🚀 Team"
MARKER = "{marker}"
HOSTILE = (
    "q'''\"\"\"+__import__('os').system('touch {marker}')+\"\"\"'+__import__('os').system('touch {marker}')+'"
    ' it\'s "quoted" {{ 7*7 }} {% if 1 %}jinja{% endif %} a|b\tZoë 🚀\n'
    'next line \\ back\\slash \\" $(touch {marker}) `touch {marker}` run.sh .yaml'
)
# The hostile pipeline's own section of airflow.yml: the __default__ DAG keeps the owner's name.
HOSTILE_SECTION = {
    "owner": 'O\'Brien "{{ 7*7 }}" {% if 1 %}x{% endif %}\nsecond line \\ $(touch {marker}) \'\'\'"""',
    "tags": ['it\'s "{{ 7*7 }}"', "{% if 1 %}x{% endif %}\nline \\ two.sh"],
}
HOSTILE_SETTINGS = {
    "operator": "gke",  # a namespace of its own, which Composer 3's cluster would refuse
    "service_account": "kedro-runner",
    "namespace": 'ns\'"{{ 7*7 }}".yaml',
    "cluster": "cl{{ 7*7 }}.yaml",
    "mlflow_iap_audience": 'aud\'"{{ 7*7 }}".yaml',
}
HOSTILE_MLFLOW = {
    "server": {"mlflow_tracking_uri": "http://127.0.0.1:5000/{{ 7*7 }}/it's.yaml"},
    "tracking": {"experiment": {"name": 'exp\'"{{ 7*7 }}"\n{% if 1 %}x{% endif %} $(touch {marker}).sh'}},
}
HOSTILE_PIPELINE = '''\
"""Nodes as awkwardly named as Kedro lets them be (written by tests/test_dags.py)."""

from kedro.pipeline import Node, Pipeline

NAMESPACE = {namespace!r}


def first(*frames):
    return frames[0]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(first, "companies", "hostile_prepared", name="prepare.sh", namespace=NAMESPACE),
            Node(first, "shuttles", "hostile_config", name="config.yaml", namespace=NAMESPACE, tags=["airflow.hostile"]),
            Node(
                first,
                ["hostile_config", "hostile_prepared"],
                "hostile_report",
                name="report",
                namespace=NAMESPACE,
                tags=["airflow.hostile"],
            ),
            Node(first, "reviews", "plain_prepared", name="prepare.sh"),
            Node(first, "reviews", "plain_config", name="config.yaml"),
        ]
    )
'''
HOSTILE_CATALOG = """
hostile_prepared:  # crosses from one task to another (tests/test_dags.py)
  type: pickle.PickleDataset
  filepath: ${dag_run:${globals:data_root}}/02_intermediate/hostile_prepared.pkl
"""
# Folder: (Kedro environment, pipelines, --params) of the hostile bake.
HOSTILE_VARIANTS = {
    "hostile-gke": ("hostile", "__default__,hostile", ()),
    "hostile-local": ("hostile", "hostile", ("operator=local",)),
}


def variant_of(name: str) -> tuple[str, str, tuple[str, ...]]:
    """The (Kedro environment, pipelines, --params) of a generated folder."""
    return {**VARIANTS, **HOSTILE_VARIANTS}[name]


def bake_of(name: str, project: Path, hostile: Path) -> Path:
    """The bake a generated folder comes from."""
    return hostile if name in HOSTILE_VARIANTS else project


def marked(value, marker: Path):
    """``value`` with the marker file's path in it."""
    if isinstance(value, str):
        return value.replace(MARKER, str(marker))
    if isinstance(value, list):
        return [marked(item, marker) for item in value]
    return {key: marked(item, marker) for key, item in value.items()}


def project_python(project: Path) -> Path:
    return project / ".venv/bin/python"


def generate(project: Path, env: str, pipelines: str, *params: str, image: str | None = IMAGE, **environ: str):
    """`python -m spaceflights_deploy generate`, as `nox -s generate` runs it, into dags/<env>/."""
    command = [project_python(project), "-m", "spaceflights_deploy", "generate", "--env", env, "--pipelines", pipelines]
    command += ["--image", image] if image else []
    command += [arg for param in params for arg in ("--params", param)]
    return subprocess.run(
        [str(part) for part in command],
        cwd=project,
        env=clean_env(**environ),
        capture_output=True,
        text=True,
        check=False,
    )


def generate_into(folder: Path, project: Path, env: str, pipelines: str, *params: str, **environ: str) -> Path:
    """Generate, then move dags/<env>/ to ``folder``, so the next generation of ``env`` starts afresh."""
    result = generate(project, env, pipelines, *params, image=None if env == "local" else IMAGE, **environ)
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.move(project / "dags" / env, folder)
    return folder


def env_of(env: str) -> dict[str, str]:
    """What generation needs in the process environment: the local MLflow server for `local`."""
    return {"MLFLOW_TRACKING_URI": LOCAL_MLFLOW} if env == "local" else {}


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [project / ".venv/bin/kedro", *args], cwd=project, env=clean_env(), capture_output=True, text=True, check=False
    )


def in_parallel(lanes: list[list[Callable[[], object]]]) -> list[object]:
    """Run each lane's calls in order, two lanes at a time: each call is a process of its own."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(lambda lane=lane: [call() for call in lane]) for lane in lanes]
        return [result for future in futures for result in future.result()]


def probe_plans(project: Path, out: Path, *envs: str) -> dict:
    """The plans and settings the project's hooks hand the template, per environment."""
    env = clean_env(MLFLOW_TRACKING_URI=LOCAL_MLFLOW)  # for `local`
    run(project_python(project), PROBES / "kedro_plans.py", out, *envs, cwd=project, env=env)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("dags"))
    (project / "conf/nogroup").mkdir()
    (project / "conf/nogroup/airflow.yml").write_text(NOGROUP)
    for name, (files, _) in REFUSED.items():
        (project / "conf" / name).mkdir()
        for file, text in files.items():
            (project / "conf" / name / file).write_text(text)
    run(uv(), "sync", "--locked", cwd=project)
    return project.resolve()  # as the local DAG names it


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    """The file the hostile text's code would create, were it ever run."""
    return tmp_path_factory.mktemp("marker") / "pwned"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, marker) -> Path:
    """A bake by an author of non-ASCII name, with a pipeline of hostile names and an
    environment of hostile settings."""
    project = bake(tmp_path_factory.mktemp("hostile"), author_name=OWNER)
    pipeline = project / "src/spaceflights/pipelines/hostile"
    pipeline.mkdir()
    (pipeline / "__init__.py").write_text('from .pipeline import create_pipeline\n\n__all__ = ["create_pipeline"]\n')
    (pipeline / "pipeline.py").write_text(HOSTILE_PIPELINE.format(namespace=marked(HOSTILE, marker)))
    with (project / "conf/base/catalog.yml").open("a") as catalog:
        catalog.write(HOSTILE_CATALOG)
    (project / "conf/hostile").mkdir()
    airflow = {"default": HOSTILE_SETTINGS, "hostile": HOSTILE_SECTION}
    for name, value in (("airflow", airflow), ("mlflow", HOSTILE_MLFLOW)):
        text = yaml.safe_dump(marked(value, marker), allow_unicode=True)
        (project / f"conf/hostile/{name}.yml").write_text(text, encoding="utf-8")
    run(uv(), "sync", "--locked", cwd=project)
    return project.resolve()


@pytest.fixture(scope="module")
def generated(project, hostile, tmp_path_factory) -> dict:
    """Every DAG folder, the refusals and the plans, made two processes at a time:
    the generations of one environment in turn, since each writes dags/<env>/."""
    root = tmp_path_factory.mktemp("generated")
    folders = {name: root / name for name in [*VARIANTS, *HOSTILE_VARIANTS]}
    plans, refused = {}, {}

    def variant(name: str) -> Callable[[], Path]:
        env, pipelines, params = variant_of(name)
        where = bake_of(name, project, hostile)
        return lambda: generate_into(folders[name], where, env, pipelines, *params, **env_of(env))

    def refusal(name: str) -> Callable[[], None]:
        def call() -> None:
            (project / "dags" / name).mkdir(parents=True)
            (project / "dags" / name / "kept.py").write_text("# the last good generation\n")
            result = generate(project, name, PIPELINES)
            refused[name] = (result, sorted(p.name for p in (project / "dags" / name).iterdir()))

        return call

    def probe(where: Path, out: str, *envs: str) -> Callable[[], None]:
        return lambda: plans.update(probe_plans(where, root / out, *envs))

    in_parallel(
        [  # the longest first
            [*(variant(name) for name in HOSTILE_VARIANTS), probe(hostile, "hostile.json", "hostile")],
            [variant("gcp"), variant("kubernetes-pod"), variant("gke")],
            [refusal(name) for name in list(REFUSED)[:2]],
            [variant("nogroup"), variant("off")],
            [variant("local"), probe(project, "plans.json", "gcp", "nogroup", "local")],
            [refusal(name) for name in list(REFUSED)[2:]],
        ]
    )
    return {"folders": folders, "refused": refused, "plans": plans}


@pytest.fixture(scope="module")
def dags(generated) -> dict[str, Path]:
    return generated["folders"]


@pytest.fixture(scope="module")
def plans(generated) -> dict[str, dict]:
    """Per environment and pipeline: the `plan` and `settings` the template got."""
    return generated["plans"]


def install_airflow(name: str, project: Path, venv: Path) -> Path:
    """An Airflow environment of its own, from its lock; its Python."""
    env = clean_env(UV_PROJECT_ENVIRONMENT=str(venv))
    run(uv(), "sync", "--locked", "--project", project / AIRFLOWS[name], cwd=project, env=env)
    return venv / "bin/python"


def load_dags(python: Path, home: Path, folders: list[Path]) -> dict[str, dict]:
    """What a real Airflow makes of every generated folder, file by file."""
    env = clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false")
    run(python, PROBES / "airflow_dags.py", home / "report.json", *folders, cwd=home, env=env)
    return json.loads((home / "report.json").read_text())["files"]


def register_dags(python: Path, home: Path, folder: Path) -> list[dict]:
    """The DAGs of ``folder`` as `airflow dags list` shows them once it is Airflow's DAG
    folder and `airflow dags reserialize` has stored them in its database."""
    # Airflow 3.1's reserialize does not put the bundle's folder on sys.path as its
    # DAG processor does, for the helper module beside the DAGs: PYTHONPATH does.
    env = clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
        AIRFLOW__CORE__DAGS_FOLDER=str(folder),
        PYTHONPATH=str(folder),
    )
    airflow = python.with_name("airflow")
    run(airflow, "db", "migrate", cwd=home, env=env)
    run(airflow, "dags", "reserialize", cwd=home, env=env)
    listed = subprocess.run(
        [airflow, "dags", "list", "--output", "json"], cwd=home, env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith("[")]
    return json.loads(line)


@pytest.fixture(scope="module")
def airflows(project, dags, tmp_path_factory) -> dict[str, dict]:
    """Each Airflow, side by side: what it makes of every DAG folder (`loaded`), and
    the DAGs of the non-ASCII author as its database holds them (`registered`)."""

    def one(name: str) -> dict:
        root = tmp_path_factory.mktemp(f"airflow-{name}")
        python = install_airflow(name, project, root / "venv")
        (root / "home").mkdir()
        (root / "db").mkdir()
        return {
            "loaded": load_dags(python, root / "home", list(dags.values())),
            "registered": register_dags(python, root / "db", dags["hostile-gke"]),
        }

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(AIRFLOWS, pool.map(one, AIRFLOWS), strict=True))


@pytest.fixture(scope="module", params=list(AIRFLOWS))
def airflow(request, airflows) -> dict:
    """One of the Airflows: every test that takes it runs in each."""
    return airflows[request.param]


@pytest.fixture(scope="module")
def loaded(airflow) -> dict[str, dict]:
    return airflow["loaded"]


@pytest.fixture(scope="module")
def registered(airflow) -> list[dict]:
    return airflow["registered"]


def helper_name(project: Path) -> str:
    """The module the DAGs import the MLflow helper as: one name per version of its code."""
    return "spaceflights_mlflow_" + hashlib.sha256((project / HELPER_SOURCE).read_bytes()).hexdigest()[:10]


def dag_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*_dag.py"))


def dag_of(loaded: dict, folder: Path, pipeline: str) -> dict:
    """The DAG generated for ``pipeline`` into ``folder``, as Airflow loaded it."""
    env = variant_of(folder.name)[0]
    (path,) = (p for p in dag_files(folder) if pipeline_of(p, env) == pipeline)
    report = loaded[str(path)]
    assert report["errors"] == {}
    (dag,) = report["dags"].values()
    return dag


def pipeline_of(path: Path, env: str) -> str:
    """The pipeline of a DAG file kedro-airflow names `<package>[_<env>][_<pipeline>]_dag.py`."""
    rest = path.name.removeprefix("spaceflights").removesuffix("_dag.py")
    rest = rest if env == "local" else rest.removeprefix(f"_{env}")
    return rest.removeprefix("_") or "__default__"


def kedro_tasks(dag: dict) -> dict[str, dict]:
    return {task_id: task for task_id, task in dag["tasks"].items() if task_id not in {START, END}}


def cell(text: str) -> str:
    """``text`` as a cell of the DAG docstring's Markdown table: one line, `|` escaped."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def expected_files(name: str, project: Path) -> list[str]:
    """The files a generation of the variant ``name`` writes, and no others."""
    env, pipelines, _ = variant_of(name)
    names = [
        "spaceflights" + ("" if env == "local" else f"_{env}") + ("" if p == "__default__" else f"_{p}") + "_dag.py"
        for p in pipelines.split(",")
    ]
    return sorted(names + ([] if name == "off" else [f"{helper_name(project)}.py"]))


def test_every_dag_and_the_helper_import_with_no_error_and_a_unique_id(loaded, dags, project, hostile):
    assert sorted(loaded) == sorted(str(path) for folder in dags.values() for path in folder.glob("*.py"))
    assert {path: report["errors"] for path, report in loaded.items() if report["errors"]} == {}
    ids = []
    for name, folder in dags.items():
        bake_ = bake_of(name, project, hostile)
        helper = helper_name(bake_)
        assert sorted(p.name for p in folder.iterdir()) == expected_files(name, bake_), name
        if name != "off":
            assert (folder / f"{helper}.py").read_bytes() == (bake_ / HELPER_SOURCE).read_bytes()
            assert loaded[str(folder / f"{helper}.py")]["dags"] == {}
        for path in dag_files(folder):
            imports = f"import {helper} as mlflow_runs\n"
            assert (imports in path.read_text()) == (name != "off"), path
            (dag_id,) = loaded[str(path)]["dags"]
            ids.append((name, dag_id))
            assert loaded[str(path)]["dags"][dag_id]["serialization_error"] is None, path
    # Unique in each folder; the variants of one environment share the ids, in other folders.
    assert len(set(ids)) == len(ids)
    assert {dag_id for _, dag_id in ids} >= {"spaceflights-__default__-gcp", "spaceflights-data_science-nogroup"}


@pytest.mark.parametrize(("env", "pipeline"), list(EXPECTED_TASKS))
def test_tasks_commands_and_edges_are_the_plans(loaded, dags, plans, env, pipeline):
    plan, dag = plans[env][pipeline]["plan"], dag_of(loaded, dags[env], pipeline)
    assert len(plan["tasks"]) == EXPECTED_TASKS[env, pipeline]
    assert list(dag["tasks"]) == [task["id"] for task in plan["tasks"]] + [START, END]
    rows = dag["doc_md"].splitlines()
    for task in plan["tasks"]:
        report = dag["tasks"][task["id"]]
        assert report["render_error"] is None
        assert report["pod"]["command"] == task["command"]
        # `kedro run` with the task's arguments runs exactly its nodes, in the environment of the pods.
        assert (task["selected"], task["selected_env"]) == (sorted(task["nodes"]), "gcp")
        upstream = sorted(a for a, b in plan["edges"] if b == task["id"]) or [START]
        assert report["upstream"] == upstream
        assert f"| {task['id']} | {task['machine']} | {', '.join(task['nodes'])} |" in rows
    assert dag["operators"] == ["KubernetesPodOperator", "PythonOperator"]  # Composer 3's own cluster
    assert set(dag["tags"]) == {"kedro", "spaceflights", pipeline, "gcp"}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_task_may_run_as_long_as_its_plan_says(loaded, dags, plans, name):
    env, pipelines, _ = VARIANTS[name]
    timeouts = set()
    for pipeline in pipelines.split(","):
        plan, dag = plans[env][pipeline]["plan"], dag_of(loaded, dags[name], pipeline)
        planned = plan["tasks"] + ([] if name == "off" else [plan["start"], plan["end"]])
        assert {task_id: task["execution_timeout"] for task_id, task in dag["tasks"].items()} == {
            task["id"]: task["timeout"] * 60 for task in planned
        }
        timeouts |= {task["timeout"] for task in planned}
    # The machine's own timeout wins over the environment's default, which wins over base's.
    assert timeouts == ({30, 45} if env == "nogroup" else {120})


def test_pods_are_built_by_the_provider_as_planned(loaded, dags, plans):
    plan, settings = plans["gcp"]["__default__"]["plan"], plans["gcp"]["__default__"]["settings"]
    machines = settings["machines"]
    for name in ["gcp", "kubernetes-pod", "gke"]:
        operator = "GKEStartPodOperator" if name == "gke" else "KubernetesPodOperator"
        # Composer 3 runs KubernetesPodOperator's pods in its namespace, as its environment's service account.
        identity = ("kedro-runner", "spaceflights") if name == "gke" else (None, "composer-user-workloads")
        dag = dag_of(loaded, dags[name], "__default__")
        pod_mode = name.endswith("-pod")
        assert dag["operators"] == ([operator] if pod_mode else [operator, "PythonOperator"])
        planned = plan["tasks"] + ([plan["start"], plan["end"]] if pod_mode else [])
        for task in planned:
            report = dag["tasks"][task["id"]]
            pod = report["pod"]
            assert pod["name"].startswith(task["pod_name"] + "-")
            assert pod["labels"]["app.kubernetes.io/name"] == "spaceflights"
            assert pod["labels"]["kedro.org/pipeline"] == "default"
            assert pod["labels"]["kedro.org/env"] == "gcp"
            assert pod["annotations"] == ({"kedro.org/nodes": ",".join(task["nodes"])} if task["nodes"] else {})
            assert pod["resources"]["requests"] == machines[task["machine"]]["requests"]
            assert pod["resources"]["limits"] == machines[task["machine"]]["limits"]
            assert (pod["service_account"], pod["namespace"], pod["image"]) == (*identity, IMAGE)
            assert pod["containers"] == ["base"]  # no XCom sidecar: tasks find the MLflow run by its tags
            assert pod["manifest"]["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
            (container,) = pod["manifest"]["spec"]["containers"]
            assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            if operator == "GKEStartPodOperator":
                assert report["cluster"] == {
                    "project_id": "my-gcp-project",
                    "location": "europe-west1",
                    "cluster_name": "spaceflights-gke",
                }
    shuttles = plan["tasks"][1]
    assert (shuttles["id"], shuttles["machine"]) == ("shuttles", "medium")


@pytest.mark.parametrize("name", POD_VARIANTS)
def test_every_pod_is_admitted_by_the_restricted_pod_security_standard(loaded, dags, name):
    """As Pod Security Admission would admit it, into a namespace labelled
    `pod-security.kubernetes.io/enforce: restricted`; valid for the Kubernetes API."""
    token = "mount_service_account_token=true" in VARIANTS[name][2]
    pods = 0
    for path in dag_files(dags[name]):
        (dag,) = loaded[str(path)]["dags"].values()
        for task_id, task in dag["tasks"].items():
            if "pod" not in task:
                assert task["operator"] == "PythonOperator", task_id
                continue
            manifest, pods = task["pod"]["manifest"], pods + 1
            assert restricted_violations(manifest) == [], (path.name, task_id)
            # The Kubernetes API token is in the pod only when the settings ask for it.
            assert manifest["spec"]["automountServiceAccountToken"] is token, (path.name, task_id)
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert pods >= 3


@pytest.mark.parametrize("name", MLFLOW_VARIANTS)
def test_one_mlflow_run_wraps_every_dag_run(loaded, dags, plans, project, name):
    """The start task comes first, every task finds its run by the DAG run's tags, the end tears it down."""
    env, pipelines, params = VARIANTS[name]
    pod_mode = "mlflow_tasks_on=pod" in params
    audience = AUDIENCE if f"mlflow_iap_audience={AUDIENCE}" in params else None
    for pipeline in pipelines.split(","):
        plan, settings = plans[env][pipeline]["plan"], plans[env][pipeline]["settings"]
        dag = dag_of(loaded, dags[name], pipeline)
        tasks, start, end = kedro_tasks(dag), dag["tasks"][START], dag["tasks"][END]
        assert settings["mlflow_tasks_on"] == "worker"  # the default; the -pod folders override it
        # From mlflow.yml, as kedro-mlflow reads it: never airflow.yml.
        tracking_uri = LOCAL_MLFLOW if env == "local" else "http://mlflow.spaceflights.svc.cluster.local:5000"
        assert (settings["mlflow_tracking_uri"], settings["mlflow_experiment"]) == (tracking_uri, "spaceflights")
        assert [plan["start"]["id"], plan["end"]["id"]] == [START, END]
        assert list(tasks) == [task["id"] for task in plan["tasks"]]
        roots = {task_id for task_id in tasks if not any(b == task_id for _, b in plan["edges"])}
        leaves = {task_id for task_id in tasks if not any(a == task_id for a, _ in plan["edges"])}
        # First: upstream of exactly the root tasks. Last: after the leaves, a teardown of the start.
        assert (start["upstream"], set(start["downstream"])) == ([], roots | {END})
        assert (start["is_setup"], start["is_teardown"]) == (True, False)
        assert (set(end["upstream"]), end["downstream"]) == (leaves | {START}, [])
        assert (end["is_setup"], end["is_teardown"]) == (False, True)
        assert end["trigger_rule"] == "all_done_setup_success"  # runs whatever happened upstream
        run_env = {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": "spaceflights",
            "AIRFLOW_DAG_ID": plan["dag_id"],
            "AIRFLOW_RUN_ID": dag["render_run_id"],
            "KEDRO_DAG_RUN_AFTER": dag["render_run_after"],
            "KEDRO_DAG_INPUTS": json.dumps(plan["inputs"]),
        } | ({"MLFLOW_IAP_AUDIENCE": audience} if audience else {})
        # What the run was triggered with: here, the defaults (a local run checks others).
        run_env["KEDRO_DAG_PARAMS"] = json.dumps({key: param["value"] for key, param in dag["params"].items()})
        for task_id, task in tasks.items():
            assert task["upstream"] == (sorted(a for a, b in plan["edges"] if b == task_id) or [START])
            assert not (task["is_setup"] or task["is_teardown"] or task["do_xcom_push"])
            assert task["trigger_rule"] == "all_success"
            own = {key: value for key, value in task["env"].items() if key not in {"PATH", "VIRTUAL_ENV"}}
            assert own == run_env, task_id  # no XCom run id, and kedro-mlflow on
        if pod_mode:
            operator = dag["operators"][0]
            assert (start["operator"], end["operator"]) == (operator, operator)
            assert dag["user_defined_macros"] == ["dag_run_status"]
            assert start["pod"]["command"] == plan["start"]["command"]
            assert plan["start"]["command"] == ["python", "-m", "kedro", "run", "--pipelines", START, "--env", env]
            assert start["pod"]["containers"] == ["base"] and not start["do_xcom_push"]
            assert start["env"] == run_env | {"KEDRO_MLFLOW": "off"}  # it starts the run: none of its own
            assert end["pod"]["command"] == plan["end"]["command"]
            assert plan["end"]["command"] == ["python", "-m", "spaceflights_deploy.mlflow_runs", "end"]
            assert not end["do_xcom_push"]
            assert end["env"] == run_env | {"MLFLOW_RUN_STATUS": "FINISHED"}  # every task succeeded
        else:
            helper = helper_name(project)
            assert (start["operator"], end["operator"]) == ("PythonOperator", "PythonOperator")
            assert dag["user_defined_macros"] == []
            assert start["python_callable"] == f"{helper}.start_dag_run"
            assert end["python_callable"] == f"{helper}.end_dag_run"
            kwargs = {"tracking_uri": tracking_uri, "experiment": "spaceflights", "audience": audience}
            assert start["op_kwargs"] == end["op_kwargs"] == kwargs  # the task instance comes from the context


def test_with_mlflow_off_the_tasks_track_nothing(loaded, dags, plans):
    plan, dag = plans["nogroup"]["__default__"]["plan"], dag_of(loaded, dags["off"], "__default__")
    assert dag["operators"] == ["KubernetesPodOperator"]
    assert list(dag["tasks"]) == [task["id"] for task in plan["tasks"]]  # no start nor end
    assert dag["user_defined_macros"] == []
    for task_id, task in dag["tasks"].items():
        assert task["upstream"] == sorted(a for a, b in plan["edges"] if b == task_id)
        # kedro-mlflow off in the pods, which still know their DAG run (for its data folder).
        env = dict(task["env"])
        assert json.loads(env.pop("KEDRO_DAG_PARAMS")) == {key: param["value"] for key, param in dag["params"].items()}
        assert env == {
            "KEDRO_MLFLOW": "off",
            "AIRFLOW_DAG_ID": plan["dag_id"],
            "AIRFLOW_RUN_ID": dag["render_run_id"],
            "KEDRO_DAG_RUN_AFTER": dag["render_run_after"],
            "KEDRO_DAG_INPUTS": json.dumps(plan["inputs"]),
        }, task_id


def test_each_dag_declares_the_parameters_its_nodes_take_with_confs_values_and_types(loaded, dags):
    options = yaml.safe_load((PROJECT_TEMPLATE / "conf/base/parameters_data_science.yml").read_text())["model_options"]
    expected = {
        "model_options.features": (options["features"], "array"),
        "model_options.random_state": (options["random_state"], "integer"),
        "model_options.test_size": (options["test_size"], "number"),
    }
    for pipeline, params in (("__default__", expected), ("data_science", expected), ("data_processing", {})):
        dag = dag_of(loaded, dags["gcp"], pipeline)
        assert {key: (param["value"], param["schema"].get("type")) for key, param in dag["params"].items()} == params


def test_the_local_dag_runs_the_plans_commands_in_the_project(loaded, dags, plans, project):
    plan, dag = plans["local"]["__default__"]["plan"], dag_of(loaded, dags["local"], "__default__")
    assert dag["operators"] == ["BashOperator", "PythonOperator"]
    assert set(dag["tags"]) == {"kedro", "spaceflights", "__default__", "local"}
    for task in plan["tasks"]:
        bash = dag["tasks"][task["id"]]
        assert bash["render_error"] is None
        # The project's interpreter, by its path, runs the plan's command.
        assert shlex.split(bash["bash_command"]) == [str(project / ".venv/bin/python"), *task["command"][1:]]
        assert task["command"][:8] == ["python", "-m", "kedro", "run", "--pipelines", "__default__", "--env", "local"]
        assert (task["selected"], task["selected_env"]) == (sorted(task["nodes"]), "local")
        assert (bash["cwd"], bash["append_env"]) == (str(project), True)
        assert bash["env"]["VIRTUAL_ENV"] == str(project / ".venv")
        assert bash["env"]["PATH"].split(os.pathsep)[0] == str(project / ".venv/bin")  # its tools first
        assert f"| {task['id']} | local | {', '.join(task['nodes'])} |" in dag["doc_md"].splitlines()


def lint_ruff() -> str:
    ruff = Path(sys.executable).with_name("ruff")  # the lint group's
    require(ruff.exists(), f"no ruff beside {sys.executable}: sync the lint group")
    return str(ruff)


def test_generated_dags_are_ruff_clean_and_import_only_airflow_and_the_helper(project, hostile, dags):
    ruff = lint_ruff()
    for name, folder in dags.items():
        bake_ = bake_of(name, project, hostile)
        # From the project, as its own lint sees dags/: the helper beside the DAGs is no first-party module.
        run(ruff, "check", "--no-cache", "--config", bake_ / "pyproject.toml", folder, cwd=bake_)
        run(ruff, "format", "--check", "--no-cache", "--config", bake_ / "pyproject.toml", folder, cwd=bake_)
        local = "operator=local" in variant_of(name)[2]
        allowed = {"airflow", "datetime"} | ({"os", "shlex"} if local else {"kubernetes"})
        allowed |= set() if name == "off" else {helper_name(bake_)}
        for path in dag_files(folder):
            imports = {line.split()[1] for line in path.read_text().splitlines() if line.startswith(("import", "from"))}
            assert {module.split(".")[0] for module in imports} == allowed, path


def test_generated_dags_follow_ruffs_airflow_rules(dags):
    """Ruff's AIR rules, the preview ones too: Airflow 3's removals and moves, task ids
    that match their variables, no XCom pulls in templates."""
    ruff = lint_ruff()
    for folder in dags.values():
        run(ruff, "check", "--no-cache", "--isolated", "--preview", "--select", "AIR", folder, cwd=folder)


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
    assert name in pipeline.read_text()
    with changed(pipeline, pipeline.read_text().replace(name, tagged)):
        # kedro airflow create itself refuses before it writes a file, and so does generate.
        template = "src/spaceflights_deploy/airflow_dag.j2"
        target = tmp_path / "dags"
        result = kedro(project, "airflow", "create", "--pipelines", PIPELINES, "-j", template, "-t", str(target))
        assert result.returncode != 0 and message in result.stdout + result.stderr
        assert not target.exists() or not any(target.iterdir())
        result = kedro(project, "run", "--pipelines", "data_science")
        assert result.returncode != 0 and message in result.stdout + result.stderr


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_bad_setting_or_a_lost_dataset_names_the_file_and_stops_generation(generated, name):
    result, left = generated["refused"][name]
    message = REFUSED[name][1]
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    if name not in {"lost", "shared"}:  # those name the dataset
        assert f"conf/{name}/airflow.yml: {message}" in output
    else:
        assert message in output
    assert "ERROR: `kedro airflow create` failed" in output
    assert left == ["kept.py"]  # the last good DAGs stay as they were


def test_kedro_run_params_are_the_pipelines_not_airflow_settings(project):
    result = kedro(project, "run", "--pipelines", "data_processing", "--params", "model_options.test_size=0.3")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nox_generate_refuses_without_an_image_then_writes_the_same_bytes_and_no_other_file(project, dags):
    nox = [sys.executable, "-m", "nox", "--non-interactive", "-s", "generate", "--"]
    env = clean_env()
    shutil.rmtree(project / "dags/gcp", ignore_errors=True)
    refused = subprocess.run(nox, cwd=project, env=env, capture_output=True, text=True, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "ERROR: no image to run: build/gcp/image is missing" in output, output
    assert not (project / "dags/gcp").exists()
    (project / "dags/gcp").mkdir(parents=True)
    (project / "dags/gcp/stale_dag.py").write_text("# from an earlier generation\n")
    run(*nox, "--image", IMAGE, "--pipelines", PIPELINES, cwd=project, env=env)
    # Generated again, the DAGs are the very bytes, and the folder holds them alone.
    names = sorted(p.name for p in dags["gcp"].iterdir())
    assert sorted(p.name for p in (project / "dags/gcp").iterdir()) == names == expected_files("gcp", project)
    for name in names:
        assert (project / "dags/gcp" / name).read_bytes() == (dags["gcp"] / name).read_bytes(), name
    assert not list((project / "build").glob("tmp*"))  # nothing left half-way


def test_hostile_names_and_settings_stay_text(loaded, dags, plans, marker):
    """Quotes, braces, newlines and shell in node namespaces and settings: no code runs
    at parse, Airflow renders none of it, and every task runs exactly its nodes."""
    assert not marker.exists(), "code in a name ran when Airflow parsed the DAGs"
    settings = marked(HOSTILE_SETTINGS | HOSTILE_SECTION, marker)
    mlflow = marked(HOSTILE_MLFLOW, marker)
    namespace = marked(HOSTILE, marker)
    for name in ["hostile-gke", "hostile-local"]:
        plan = plans["hostile"]["hostile"]["plan"]
        dag = dag_of(loaded, dags[name], "hostile")
        pods = name == "hostile-gke"
        assert dag["serialization_error"] is None
        assert dag["owner"] == settings["owner"]
        assert set(dag["tags"]) == {"kedro", "spaceflights", "hostile", *settings["tags"]}
        rows = dag["doc_md"].splitlines()
        assert list(dag["tasks"]) == [task["id"] for task in plan["tasks"]] + [START, END]
        assert any(namespace in task["nodes"][0] for task in plan["tasks"])
        assert any(task["command"][-1].endswith(".sh") for task in plan["tasks"])
        for task in plan["tasks"]:
            report = dag["tasks"][task["id"]]
            assert report["render_error"] is None, task["id"]
            if pods:
                assert report["pod"]["command"] == task["command"]
            else:
                assert shlex.split(report["bash_command"])[1:] == task["command"][1:]
            assert (task["selected"], task["selected_env"]) == (sorted(task["nodes"]), "hostile")
            machine = task["machine"] if pods else "local"
            assert f"| {task['id']} | {machine} | {cell(', '.join(task['nodes']))} |" in rows
            assert report["env"]["MLFLOW_EXPERIMENT_NAME"] == mlflow["tracking"]["experiment"]["name"]
            assert report["env"]["MLFLOW_TRACKING_URI"] == mlflow["server"]["mlflow_tracking_uri"]
            assert report["env"]["MLFLOW_IAP_AUDIENCE"] == settings["mlflow_iap_audience"]
            if pods:
                assert report["pod"]["annotations"] == {"kedro.org/nodes": ",".join(task["nodes"])}
                assert report["pod"]["namespace"] == settings["namespace"]
                assert report["cluster"]["cluster_name"] == settings["cluster"]
        for task_id in (START, END):
            assert dag["tasks"][task_id]["op_kwargs"] == {
                "tracking_uri": mlflow["server"]["mlflow_tracking_uri"],
                "experiment": mlflow["tracking"]["experiment"]["name"],
                "audience": settings["mlflow_iap_audience"],
            }


def test_non_ascii_answers_reach_airflow_whole(loaded, dags, registered, marker):
    """An author's name with an accent and an emoji, and the hostile owner: Airflow
    stores the DAGs in its database, owners and all."""
    owners = {dag["dag_id"]: dag["owners"] for dag in registered}
    hostile_owner = marked(HOSTILE_SECTION["owner"], marker)
    expected = {"spaceflights-__default__-hostile": OWNER, "spaceflights-hostile-hostile": hostile_owner}
    assert set(owners) == set(expected)
    for dag_id, owner in owners.items():
        assert owner in ([expected[dag_id]], expected[dag_id]), dag_id  # a list from Airflow 3.2 on
    assert dag_of(loaded, dags["hostile-gke"], "__default__")["owner"] == OWNER
    assert not marker.exists(), "code in a name ran when Airflow stored the DAGs"
