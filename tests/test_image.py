"""The baked project's image and its shipping sessions, against a real Docker engine,
a registry and a Cloud Storage emulator on 127.0.0.1 (see components.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

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
from conftest import bake, choices, clean_env, run, uv

PYTHON = choices("python_version")[0]
# Files a user's machine has in the project but no pod may see: gitignored, so the
# tree stays clean, and each must stay out of the image.
PRIVATE = {
    "conf/local/credentials.yml": "gcp_service_account: {token: secret}\n",
    "data/02_intermediate/leftover.parquet": "local data",
    "dags/old_dag.py": "# generated earlier\n",
    ".venv/bin/python": "#!/bin/sh\n",
}
BUCKET = "composer-bucket"


def committed(project: Path) -> Path:
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Bake")
    return project


def project_module(project: Path, name: str) -> ModuleType:
    """A module of the baked project that needs no Kedro, imported from its file."""
    path = next(project.glob(f"src/*/{name}.py"))
    spec = importlib.util.spec_from_file_location(f"baked_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nox(project: Path, *args: str, **env: str) -> str:
    """Run the baked project's nox sessions; fail the test with their output if they fail."""
    return run(sys.executable, "-m", "nox", "--non-interactive", "-s", *args, cwd=project, env=clean_env(**env))


def nox_refused(project: Path, *args: str, **env: str) -> str:
    """Run the baked project's nox sessions, which must fail; return their output."""
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--non-interactive", "-s", *args],
        cwd=project,
        env=clean_env(**env),
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


def ca_bundle() -> dict[str, str]:
    """The deploy.yml setting that hands the build this machine's CA certificates."""
    bundle = trusted_ca_bundle()
    return {"ca_bundle": bundle} if bundle else {}


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
def project(tmp_path_factory, registry_address) -> Path:
    """A baked project in its own git repository, shipping to the test registry and bucket."""
    ensure_base_image(PYTHON)
    project = committed(bake(tmp_path_factory.mktemp("ship")))
    for name, text in PRIVATE.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    settings = {"image": f"{registry_address}/{project.name}", "dags_folder": f"gs://{BUCKET}/dags"}
    (project / "conf/local/deploy.yml").write_text(json.dumps(settings | ca_bundle()))
    assert git(project, "status", "--porcelain") == "", "the private files must be gitignored"
    return project


@pytest.fixture(scope="module")
def built(project) -> str:
    output = nox(project, "build")
    (tag,) = re.findall(r"^Built (\S+)$", output, re.MULTILINE)
    return tag


@pytest.mark.slow
def test_image_is_tagged_and_labelled_with_the_git_revision(project, built):
    head = git(project, "rev-parse", "HEAD")
    image = json.loads((project / "conf/local/deploy.yml").read_text())["image"]
    assert built == f"{image}:{head[:12]}"
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", built).stdout)
    assert labels["org.opencontainers.image.revision"] == head


@pytest.mark.slow
def test_a_container_runs_one_task_as_its_pod_would(project, built, emulator, tmp_path):
    # The gcp environment reads and writes the data bucket: here the emulator's.
    bucket = emulated_storage(emulator).create_bucket(f"my-gcp-project-{project.name}")
    for raw in (project / "data/01_raw").iterdir():
        bucket.blob(f"{project.name}/01_raw/{raw.name}").upload_from_filename(raw)
    # The DAG's first task has started the DAG run's MLflow run, on a real server.
    venv = tmp_path / "venv"  # the project's .venv is one of the private files, a fake
    run(uv(), "sync", "--locked", cwd=project, env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    mlflow_runs = project_module(project, "mlflow_runs")
    with mlflow_server(venv / "bin/mlflow", tmp_path) as tracking:
        run_id = mlflow_runs.start_run(tracking, "spaceflights", "spaceflights-__default__-gcp", "manual__1")
        pod_env = {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_RUN_ID": run_id, "MLFLOW_RUN_NAME": "manual__1"}
        env = [f"--env={key}={value}" for key, value in pod_env.items()]
        env += [f"--env=STORAGE_EMULATOR_HOST={emulator}", "--env=COLUMNS=200"]  # whole log lines

        command = ["python", "-m", "kedro", "run", "--pipelines", "__default__", "--env", "gcp"]
        command += ["--nodes", "preprocess_companies_node"]
        result = docker("run", "--rm", "--network=host", *env, built, *command)
        tracked = mlflow_runs.Tracking(tracking).call("GET", "runs/get", run_id=run_id)["run"]
        # The last task, in pod mode, ends the run (test_dags checks the DAG's command is the plan's).
        end = ["python", "-m", "spaceflights.mlflow_runs", "end"]
        docker("run", "--rm", "--network=host", *env, "--env=MLFLOW_RUN_STATUS=FAILED", built, *end)
        ended = mlflow_runs.Tracking(tracking).call("GET", "runs/get", run_id=run_id)["run"]

    assert "Pipeline execution completed successfully" in result.stdout + result.stderr
    written = bucket.blob(f"{project.name}/02_intermediate/preprocessed_companies.parquet")
    assert written.download_as_bytes().startswith(b"PAR1"), "the task writes its output to the bucket"
    assert not bucket.blob(f"{project.name}/02_intermediate/preprocessed_shuttles.parquet").exists()
    tags = {tag["key"]: tag["value"] for tag in tracked["data"]["tags"]}
    assert "preprocess_companies_node" in tags["node_names"], "the pod logged into the DAG run's run"
    assert tags["mlflow.runName"] == "manual__1"
    assert ended["info"]["status"] == "FAILED" and ended["info"]["end_time"]


@pytest.mark.slow
def test_the_container_runs_as_a_non_root_user(built):
    assert docker("image", "inspect", "--format", "{{.Config.User}}", built).stdout.strip() == "10001"
    assert docker("run", "--rm", built, "id", "-u").stdout.strip() == "10001"
    touch = docker("run", "--rm", built, "touch", "/app/src/x", check=False)
    assert touch.returncode != 0, "the code must be read-only for the user that runs it"


@pytest.mark.slow
def test_the_image_holds_only_what_pods_need(project, built):
    listing = docker(
        "run", "--rm", built, "find", "/app", "-path", "/app/.venv", "-prune", "-o", "-type", "f", "-print"
    )
    files = {path.removeprefix("/app/") for path in listing.stdout.split()}
    package = project.name.replace("-", "_")
    expected = {"pyproject.toml", ".telemetry"}
    expected |= {str(p.relative_to(project)) for p in (project / "conf").rglob("*.yml") if "local" not in p.parts}
    expected |= {str(p.relative_to(project)) for p in (project / "src").rglob("*.py")}
    expected -= {"conf/base/deploy.yml"}
    assert files == expected
    assert f"src/{package}/settings.py" in files
    assert "consent: false" in docker("run", "--rm", built, "cat", "/app/.telemetry").stdout

    no_tools = "import importlib.util as u; print([m for m in ('airflow', 'kedro_airflow', 'pytest', 'ruff', 'nox', 'uv') if u.find_spec(m)])"
    assert docker("run", "--rm", built, "python", "-c", no_tools).stdout.strip() == "[]"
    no_ca = docker("run", "--rm", built, "sh", "-c", "test ! -e /run/secrets/ca-bundle && test ! -e /run/tls/ca.pem")
    assert no_ca.returncode == 0


@pytest.mark.slow
def test_a_code_change_rebuilds_only_the_code(project, built, tmp_path):
    clone = tmp_path / project.name
    git(tmp_path, "clone", "-q", str(project), str(clone))
    (clone / "conf/local/deploy.yml").write_text((project / "conf/local/deploy.yml").read_text())
    nodes = next(clone.glob("src/*/pipelines/data_processing/nodes.py"))
    # A change no earlier build has seen, so the build cache cannot have its layer.
    nodes.write_text(nodes.read_text() + f"\n# A change to the code alone: {uuid.uuid4()}\n")
    git(clone, "commit", "-qam", "Change the code")

    output = nox(clone, "build", "--", "--progress=plain")
    (tag,) = re.findall(r"^Built (\S+)$", output, re.MULTILINE)

    # BuildKit's plain progress: `#<n> [<stage> <i>/<k>] <instruction>`, then `#<n> CACHED` if reused.
    steps = dict(re.findall(r"^#(\d+) \[(?:builder|stage-\d+) \d+/\d+\] (.+)$", output, re.MULTILINE))
    ran = {step for number, step in steps.items() if f"#{number} CACHED" not in output and not step.startswith("FROM")}
    assert any("--no-install-project" in instruction for instruction in steps.values())
    assert ran == {"COPY src src"}, "every step but the code's copy comes from the cache"
    assert layers(tag)[-1] not in layers(built)


@pytest.mark.slow
def test_push_records_the_digest_the_registry_serves(project, built, registry_address):
    nox(project, "push")

    pinned = (project / "build/image").read_text()
    name, digest = pinned.strip().split("@")
    assert pinned.count("\n") == 1 and name == built.rsplit(":", 1)[0]
    request = urllib.request.Request(
        f"http://{registry_address}/v2/{project.name}/manifests/{built.rsplit(':', 1)[1]}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Docker-Content-Digest"] == digest


@pytest.mark.slow
def test_push_says_when_the_registry_wants_a_login(project, built, tmp_path):
    clone = tmp_path / project.name
    git(tmp_path, "clone", "-q", str(project), str(clone))
    with registry(tmp_path / "locked", locked=True) as address:
        image = f"{address}/{project.name}"
        docker("tag", built, f"{image}:{built.rsplit(':', 1)[1]}")
        (clone / "conf/local/deploy.yml").write_text(json.dumps({"image": image}))
        output = nox_refused(clone, "push")

    assert f"ERROR: {address} refused the push, not logged in" in output
    assert not (clone / "build/image").exists()


@pytest.mark.slow
def test_the_generated_dag_pins_the_pushed_digest(project, built):
    nox(project, "push")
    nox(project, "generate", "--", "--env", "gcp")

    pinned = (project / "build/image").read_text().strip()
    dags = [path.read_text() for path in (project / "dags").glob("*_dag.py") if path.name != "old_dag.py"]
    assert dags
    assert all(pinned in dag for dag in dags)


@pytest.mark.slow
def test_deploy_ships_image_dags_and_says_where(project, built, emulator):
    bucket = emulated_storage(emulator).create_bucket(BUCKET)

    output = nox(project, "deploy", "--", "--target", "composer", STORAGE_EMULATOR_HOST=emulator)

    pinned = (project / "build/image").read_text().strip()
    assert f"image     {pinned}" in output
    uploaded = {blob.name: blob.download_as_bytes() for blob in bucket.list_blobs()}
    local = {f"dags/{path.name}": path.read_bytes() for path in (project / "dags").glob("*.py")}
    assert uploaded == local
    assert f"DAG files gs://{BUCKET}/dags" in output
    assert "DAG ids   (none found)" not in output


@pytest.mark.slow
@pytest.mark.parametrize("version", choices("python_version")[1:])
def test_the_image_builds_and_runs_on_the_other_pythons(tmp_path, version):
    require_docker()
    ensure_base_image(version)
    project = committed(bake(tmp_path, python_version=version))
    (project / "conf/local/deploy.yml").write_text(json.dumps({"image": f"local/{project.name}"} | ca_bundle()))

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
    (project / "conf/local/deploy.yml").write_text("require_clean_tree: true\n")
    (project / "notes.txt").write_text("not committed")

    output = nox_refused(project, "build")

    assert "ERROR: the working tree has uncommitted changes" in output


def test_the_dockerfile_passes_hadolint(tmp_path):
    hadolint = Path(sys.executable).with_name("hadolint")
    for version in choices("python_version"):
        project = bake(tmp_path / version, python_version=version)
        assert f"ARG BASE_IMAGE=python:{version}-slim-bookworm" in (project / "Dockerfile").read_text()
        run(hadolint, "--failure-threshold", "info", "Dockerfile", cwd=project)
