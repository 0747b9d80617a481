"""The baked project's image and its shipping sessions, against a real Docker engine,
a registry and a Cloud Storage emulator on 127.0.0.1 (see components.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from components import (
    docker,
    emulated_storage,
    ensure_base_image,
    gcs_emulator,
    mlflow_server,
    registry,
    require_docker,
    trusted_ca_bundle,
)
from conftest import bake, choices, clean_env, project_module, run, uv

PYTHON = choices("python_version")[0]
PACKAGE = "spaceflights"
# Files a user's machine may have in the project that no pod may see. Ignored by git
# here (.git/info/exclude), so the tree stays clean; each must stay out of the image.
PRIVATE = {
    "conf/local/credentials.yml": "gcp_service_account: {token: secret}\n",
    "conf/base/sa-key.json": '{"private_key": "-----BEGIN PRIVATE KEY-----"}\n',
    "conf/base/.env": "MLFLOW_TRACKING_PASSWORD=secret\n",
    "conf/gcp/secrets.yml": "password: secret\n",
    "conf/gcp/service-account": "a key without an extension\n",
    f"src/{PACKAGE}/client_secret.json": '{"installed": {"client_secret": "secret"}}\n',
    f"src/{PACKAGE}/pipelines/.env": "TOKEN=secret\n",
    f"src/{PACKAGE}/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    "data/02_intermediate/leftover.parquet": "local data",
    "dags/gcp/old_dag.py": "# generated earlier\n",
}
# Two deployments of the one project, as Kedro environments (conf/<env>/).
ENVIRONMENTS = ("dev", "prod")


def committed(project: Path) -> Path:
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Bake")
    return project


def shipping_env(**env: str) -> dict[str, str]:
    """The environment of the shipping sessions: this machine's CA bundle for the build."""
    bundle = trusted_ca_bundle()
    return clean_env(**({"DEPLOY_CA_BUNDLE": bundle} if bundle else {}), **env)


def nox(project: Path, *args: str, **env: str) -> str:
    """Run the baked project's nox sessions; fail the test with their output if they fail."""
    return run(sys.executable, "-m", "nox", "--non-interactive", "-s", *args, cwd=project, env=shipping_env(**env))


def nox_refused(project: Path, *args: str, **env: str) -> str:
    """Run the baked project's nox sessions, which must fail; return their output."""
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--non-interactive", "-s", *args],
        cwd=project,
        env=shipping_env(**env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def git(project: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=project, check=True, capture_output=True, text=True).stdout.strip()


def layers(tag: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag).stdout)


def set_image(conf: Path, image: str, gcp_project_id: str | None = None) -> None:
    """Point an environment's DAGs (airflow.yml's `default`) at ``image``; with
    ``gcp_project_id``, on a GKE cluster of that project (whose DAG names it)."""
    default = {"image": image}
    if gcp_project_id:
        cluster = {"cluster": "pods", "namespace": "spaceflights", "service_account": "kedro-runner"}
        default |= {"gcp_project_id": gcp_project_id, "operator": "gke", **cluster}
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "airflow.yml").write_text(json.dumps({"default": default}))


def served_digest(registry_address: str, tag: str) -> str:
    """The digest the registry serves for ``tag`` (<name>:<tag>)."""
    name, reference = tag.split("/", 1)[1].rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{registry_address}/v2/{name}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request) as response:
        return response.headers["Docker-Content-Digest"]


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator() as url:
        yield url


@pytest.fixture(scope="module")
def registry_address(tmp_path_factory):
    require_docker()
    with registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def prod_registry(tmp_path_factory, registry_address):
    with registry(tmp_path_factory.mktemp("prod-registry")) as address:
        yield address


@pytest.fixture(scope="module")
def project(tmp_path_factory, registry_address, prod_registry) -> Path:
    """A baked project in its own git repository, shipping its gcp environment to the
    test registry, with a dev and a prod environment of its own (conf/dev, conf/prod)."""
    ensure_base_image(PYTHON)
    project = bake(tmp_path_factory.mktemp("ship"))
    set_image(project / "conf/gcp", f"{registry_address}/{PACKAGE}")
    for env, address in zip(ENVIRONMENTS, (registry_address, prod_registry), strict=True):
        shutil.copytree(project / "conf/gcp", project / "conf" / env)
        set_image(project / "conf" / env, f"{address}/{PACKAGE}-{env}", f"my-{env}-project")
        with (project / "conf" / env / "deploy.yml").open("a") as deploy:
            deploy.write(f"dags_folder: gs://{env}-composer-bucket/dags\n")
    return planted(committed(project))


def planted(project: Path) -> Path:
    """``project`` with the private files in it, ignored by git."""
    (project / ".git/info/exclude").write_text("".join(f"/{name}\n" for name in PRIVATE))
    for name, text in PRIVATE.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    assert git(project, "status", "--porcelain") == "", "the private files must be ignored"
    return project


@pytest.fixture(scope="module")
def built(project) -> str:
    output = nox(project, "build")
    (tag,) = re.findall(r"^Built (\S+)$", output, re.MULTILINE)
    return tag


@pytest.mark.slow
def test_image_is_tagged_and_labelled_with_the_git_revision(project, built, registry_address):
    head = git(project, "rev-parse", "HEAD")
    assert built == f"{registry_address}/{PACKAGE}:{head[:12]}"
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", built).stdout)
    assert labels["org.opencontainers.image.revision"] == head


def pod(built: str, *args: str, env: dict[str, str], flags: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``args`` in the image as the DAG's pods run: its user, a read-only root file
    system with a writable /tmp, the host's network (for the emulator and MLflow)."""
    flags = [*flags, "--rm", "--network=host", "--read-only", "--tmpfs=/tmp", "--env=COLUMNS=200"]
    flags += [f"--env={key}={value}" for key, value in env.items()]
    return docker("run", *flags, built, *args, check=False)


KEDRO_RUN = ("python", "-m", "kedro", "run", "--pipelines", "__default__", "--env", "gcp")


@pytest.fixture(scope="module")
def data_bucket(project, emulator):
    """The gcp environment's data bucket, on the emulator, with the raw data."""
    bucket = emulated_storage(emulator).create_bucket(f"my-gcp-project-{PACKAGE}")
    for raw in (project / "data/01_raw").iterdir():
        bucket.blob(f"{PACKAGE}/01_raw/{raw.name}").upload_from_filename(raw)
    return bucket


@pytest.mark.slow
def test_a_read_only_container_runs_one_task_into_the_dag_runs_mlflow_run(
    project, built, emulator, data_bucket, tmp_path
):
    # The DAG's first task has started the DAG run's MLflow run, on a real server.
    venv = tmp_path / "venv"
    run(uv(), "sync", "--locked", cwd=project, env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    mlflow_runs = project_module(project, "mlflow_runs")
    with mlflow_server(venv / "bin/mlflow", tmp_path) as tracking:
        run_id = mlflow_runs.start_run(tracking, PACKAGE, "spaceflights-__default__-gcp", "manual__1")
        # What the DAG gives every pod (airflow_dag.j2's RUN_ENV): no MLflow run id.
        env = {
            "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_EXPERIMENT_NAME": PACKAGE,
            "AIRFLOW_DAG_ID": "spaceflights-__default__-gcp",
            "AIRFLOW_RUN_ID": "manual__1",
            "STORAGE_EMULATOR_HOST": emulator,
        }
        # As if the gcp environment's mlflow.yml named this server, as the DAG's RUN_ENV does.
        conf = tmp_path / "mlflow.yml"
        conf.write_text(json.dumps({"server": {"mlflow_tracking_uri": tracking}}))
        mount = f"--volume={conf}:/app/conf/gcp/mlflow.yml:ro"
        result = pod(built, *KEDRO_RUN, "--nodes", "preprocess_companies_node", env=env, flags=[mount])
        tracked = mlflow_runs.Tracking(tracking).call("GET", "runs/get", run_id=run_id)["run"]
        # The last task, in pod mode, ends the run (test_dags checks the DAG's command is the plan's).
        end = pod(
            built, "python", "-m", f"{PACKAGE}_deploy.mlflow_runs", "end", env=env | {"MLFLOW_RUN_STATUS": "FAILED"}
        )
        ended = mlflow_runs.Tracking(tracking).call("GET", "runs/get", run_id=run_id)["run"]

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pipeline execution completed successfully" in result.stdout + result.stderr
    folder = f"{PACKAGE}/{project_module(project, 'plan').dag_run_prefix(env['AIRFLOW_DAG_ID'], 'manual__1')}"
    written = data_bucket.blob(f"{folder}/02_intermediate/preprocessed_companies.parquet")
    assert written.download_as_bytes().startswith(b"PAR1"), "the task writes its output in its run's folder"
    assert not data_bucket.blob(f"{folder}/02_intermediate/preprocessed_shuttles.parquet").exists()
    assert not list(data_bucket.list_blobs(prefix=f"{PACKAGE}/02_intermediate/")), "nothing outside it"
    tags = {tag["key"]: tag["value"] for tag in tracked["data"]["tags"]}
    assert "preprocess_companies_node" in tags["node_names"], "the pod logged into the DAG run's run"
    assert tags["mlflow.runName"] == "manual__1", "the run keeps the DAG run's name"
    assert tags["data_folder"] == f"gs://{data_bucket.name}/{folder}", "the run says where its data went"
    assert end.returncode == 0, end.stdout + end.stderr
    assert ended["info"]["status"] == "FAILED" and ended["info"]["end_time"]


@pytest.mark.slow
def test_with_mlflow_off_the_tasks_of_a_run_hand_their_data_over_in_its_folder(project, built, emulator, data_bucket):
    # What a DAG with mlflow_tasks_on: off gives its pods; no MLflow server anywhere.
    dag_run = {"AIRFLOW_DAG_ID": "spaceflights-__default__-gcp", "AIRFLOW_RUN_ID": "manual__2026-12-04T10:00:00+00:00"}
    env = {"KEDRO_MLFLOW": "off", "STORAGE_EMULATOR_HOST": emulator} | dag_run
    first = pod(built, *KEDRO_RUN, "--nodes", "preprocess_companies_node,preprocess_shuttles_node", env=env)
    second = pod(built, *KEDRO_RUN, "--nodes", "create_model_input_table_node", env=env)

    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    folder = f"{PACKAGE}/{project_module(project, 'plan').dag_run_prefix(*dag_run.values())}"
    assert data_bucket.blob(f"{folder}/03_primary/model_input_table.parquet").exists()
    assert not list(data_bucket.list_blobs(prefix=f"{PACKAGE}/03_primary/")), "nothing outside the run's folder"
    raw = {blob.name for blob in data_bucket.list_blobs(prefix=f"{PACKAGE}/01_raw/")}
    assert len(raw) == 3, "the raw data is read from its usual place, and left there"


@pytest.mark.slow
def test_the_container_runs_as_a_non_root_user(built):
    assert docker("image", "inspect", "--format", "{{.Config.User}}", built).stdout.strip() == "10001"
    assert docker("run", "--rm", built, "id", "-u").stdout.strip() == "10001"
    touch = docker("run", "--rm", built, "touch", f"/app/src/{PACKAGE}/x", check=False)
    assert touch.returncode != 0, "the code must be read-only for the user that runs it"


@pytest.mark.slow
def test_the_image_holds_only_what_pods_need(project, built):
    listing = docker(
        "run", "--rm", built, "find", "/app", "-path", "/app/.venv", "-prune", "-o", "-type", "f", "-print"
    )
    files = {path.removeprefix("/app/") for path in listing.stdout.split()}
    committed_files = set(git(project, "ls-files").splitlines())
    expected = {"pyproject.toml", ".telemetry"}
    expected |= {name for name in committed_files if name.startswith("src/") and name.endswith(".py")}
    expected |= {
        name
        for name in committed_files
        if name.startswith("conf/") and name.endswith(".yml") and not name.startswith("conf/local/")
    }
    expected -= {name for name in committed_files if Path(name).name == "deploy.yml"}
    assert files == expected
    assert not files & set(PRIVATE), "no planted secret reaches the image"
    assert {f"src/{PACKAGE}/settings.py", f"src/{PACKAGE}_deploy/mlflow_hooks.py"} <= files
    assert "consent: false" in docker("run", "--rm", built, "cat", "/app/.telemetry").stdout

    no_tools = "import importlib.util as u; print([m for m in ('airflow', 'kedro_airflow', 'pytest', 'ruff', 'nox', 'uv') if u.find_spec(m)])"
    assert docker("run", "--rm", built, "python", "-c", no_tools).stdout.strip() == "[]"
    no_ca = docker("run", "--rm", built, "sh", "-c", "test ! -e /run/secrets/ca-bundle && test ! -e /run/tls/ca.pem")
    assert no_ca.returncode == 0


@pytest.mark.slow
def test_a_code_change_rebuilds_only_the_code(project, built, tmp_path):
    clone = tmp_path / project.name
    git(tmp_path, "clone", "-q", str(project), str(clone))
    planted(clone)  # the same build context as the project's, but for the change
    nodes = clone / f"src/{PACKAGE}/pipelines/data_processing/nodes.py"
    # A change no earlier build has seen, so the build cache cannot have its layer.
    nodes.write_text(nodes.read_text() + f"\n# A change to the code alone: {uuid.uuid4()}\n")
    git(clone, "commit", "-qam", "Change the code")

    output = nox(clone, "build", "--", "--progress=plain")
    (tag,) = re.findall(r"^Built (\S+)$", output, re.MULTILINE)

    # BuildKit's plain progress: `#<n> [<stage> <i>/<k>] <instruction>`, then `#<n> CACHED` if reused.
    steps = dict(re.findall(r"^#(\d+) \[(?:builder|code|stage-\d+) \d+/\d+\] (.+)$", output, re.MULTILINE))
    ran = {step for number, step in steps.items() if f"#{number} CACHED" not in output and not step.startswith("FROM")}
    assert any("--no-install-project" in instruction for instruction in steps.values())
    assert {step.split(" && ")[0].strip() for step in ran} == {
        "COPY src src",
        "RUN find src -type f ! -name '*.py' -delete",
        "COPY --from=code /app/src src",
    }, "every step but the code's comes from the cache"
    assert layers(tag)[-1] not in layers(built)


@pytest.mark.slow
def test_push_records_the_digest_the_registry_serves(project, built, registry_address):
    nox(project, "push")

    pinned = (project / "build/gcp/image").read_text()
    name, digest = pinned.strip().split("@")
    assert pinned.count("\n") == 1 and name == built.rsplit(":", 1)[0]
    assert served_digest(registry_address, built) == digest


@pytest.mark.slow
def test_push_says_when_the_registry_wants_a_login(project, built, tmp_path):
    clone = tmp_path / project.name
    git(tmp_path, "clone", "-q", str(project), str(clone))
    with registry(tmp_path / "locked", locked=True) as address:
        image = f"{address}/{PACKAGE}"
        set_image(clone / "conf/gcp", image)
        git(clone, "commit", "-qam", "Push to the locked registry")
        docker("tag", built, f"{image}:{git(clone, 'rev-parse', 'HEAD')[:12]}")
        output = nox_refused(clone, "push")

    assert f"ERROR: {address} refused the push, not logged in" in output
    assert f"gcloud auth configure-docker {address}" in output
    assert not (clone / "build/gcp/image").exists()


@pytest.mark.slow
def test_the_generated_dag_pins_the_pushed_digest(project, built):
    nox(project, "push")
    nox(project, "generate", "--", "--env", "gcp")

    pinned = (project / "build/gcp/image").read_text().strip()
    dags = list((project / "dags/gcp").glob(f"{PACKAGE}*_dag.py"))
    assert dags
    assert all(pinned in dag.read_text() for dag in dags)
    assert not (project / "dags/gcp/old_dag.py").exists(), "dags/<env>/ holds this generation alone"


@pytest.mark.slow
def test_dev_and_prod_deploy_each_to_their_own_registry_project_and_dag_folder(
    project, built, emulator, registry_address, prod_registry
):
    storage = emulated_storage(emulator)
    buckets = {env: storage.create_bucket(f"{env}-composer-bucket") for env in ENVIRONMENTS}
    registries = dict(zip(ENVIRONMENTS, (registry_address, prod_registry), strict=True))
    short = git(project, "rev-parse", "HEAD")[:12]

    outputs = {
        env: nox(project, "deploy", "--", "--target", "composer", "--env", env, STORAGE_EMULATOR_HOST=emulator)
        for env in ENVIRONMENTS
    }

    for env, output in outputs.items():
        image = f"{registries[env]}/{PACKAGE}-{env}"
        pinned = (project / "build" / env / "image").read_text().strip()
        assert pinned == f"{image}@{served_digest(registries[env], f'{image}:{short}')}"
        assert f"image     {pinned}" in output
        local = {f"dags/{path.name}": path.read_bytes() for path in (project / "dags" / env).glob("*.py")}
        uploaded = {blob.name: blob.download_as_bytes() for blob in buckets[env].list_blobs()}
        assert uploaded == local, f"gs://{env}-composer-bucket holds the {env} DAGs, and only them"
        (dag,) = (path.read_text() for path in (project / "dags" / env).glob("*_dag.py"))
        assert pinned in dag and f"my-{env}-project" in dag and f'"--env",\n    "{env}",' in dag
        assert f"DAG files gs://{env}-composer-bucket/dags" in output
    other = {"dev": "prod", "prod": "dev"}
    for env in ENVIRONMENTS:
        (dag,) = (path.read_text() for path in (project / "dags" / env).glob("*_dag.py"))
        assert f"my-{other[env]}-project" not in dag and registries[other[env]] not in dag


@pytest.mark.slow
@pytest.mark.parametrize("version", choices("python_version")[1:])
def test_the_image_builds_and_runs_on_the_other_pythons(tmp_path, version):
    require_docker()
    ensure_base_image(version)
    project = committed(bake(tmp_path, python_version=version))

    output = nox(project, "build")

    (tag,) = re.findall(r"^Built (\S+)$", output, re.MULTILINE)
    assert docker("run", "--rm", tag, "python", "--version").stdout.startswith(f"Python {version}.")
    assert "kedro_telemetry" in docker("run", "--rm", tag).stdout, "the default command, `kedro info`, runs"


@pytest.mark.slow
def test_build_says_when_no_docker_daemon_answers(project):
    output = nox_refused(project, "build", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert "ERROR: no Docker daemon answers" in output


@pytest.mark.slow
def test_build_refuses_a_dirty_tree_when_the_configuration_says_so(tmp_path):
    project = committed(bake(tmp_path))
    with (project / "conf/gcp/deploy.yml").open("a") as deploy:
        deploy.write("require_clean_tree: true\n")
    (project / "notes.txt").write_text("not committed")

    output = nox_refused(project, "build")

    assert "ERROR: the working tree has uncommitted changes and require_clean_tree forbids them" in output


def test_the_dockerfile_passes_hadolint(tmp_path):
    hadolint = Path(sys.executable).with_name("hadolint")
    for version in choices("python_version"):
        project = bake(tmp_path / version, python_version=version)
        assert f"ARG BASE_IMAGE=python:{version}-slim-bookworm" in (project / "Dockerfile").read_text()
        run(hadolint, "--failure-threshold", "info", "Dockerfile", cwd=project)
