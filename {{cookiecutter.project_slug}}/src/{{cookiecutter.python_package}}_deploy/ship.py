"""Ship the project to Cloud Composer: build and push its image, upload its DAGs.

`nox -s build push upload deploy` run this, for one Kedro environment at a time
(`--env`, gcp by default). Its settings are that environment's, read by
``config.deploy_settings``: the image, GCP project and region of the DAGs
(airflow.yml's ``default``) and the rest from deploy.yml. What a step leaves for the
next is the environment's own too: ``build/<env>/image`` (the pushed image, by
digest) and ``dags/<env>/`` (the DAGs `generate` wrote).
Every failure the user can fix is a ``ShipError``: `<what>: <how to fix it>`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Set on every uploaded file: the identity of the project and environment it belongs
# to, so an upload only ever replaces or removes its own files in a DAG folder that
# other projects (or this one's other environments) share.
OWNER = "kedro-deployment"
# What an upload does: list the folder, add and replace files (an overwrite is a
# delete too), remove its stale ones. No bucket-level permission.
UPLOAD_PERMISSIONS = (
    "storage.objects.list",
    "storage.objects.create",
    "storage.objects.delete",
)
# Docker passes these to the build without keeping them in the image's history.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


class ShipError(Exception):
    """A problem the user can fix: the message says what and how."""


@dataclass(frozen=True)
class Target:
    """One Kedro environment of the project, as shipping sees it."""

    project: Path
    env: str
    settings: dict[str, Any]  # config.deploy_settings

    @property
    def image_file(self) -> Path:
        """Where `push` records the image by digest, for `generate`."""
        return self.project / "build" / self.env / "image"

    @property
    def dags(self) -> Path:
        """Where `generate` writes the DAGs that `upload` ships."""
        return self.project / "dags" / self.env

    def shown(self, path: Path) -> str:
        return str(path.relative_to(self.project))


def project_name(project: Path) -> str:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]


def output(project: Path, *cmd: str) -> str:
    """Run ``cmd`` in ``project``; its stdout, or the ShipError it deserves."""
    result = subprocess.run(
        cmd, cwd=project, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise ShipError(
            f"{' '.join(cmd)} failed: {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout.strip()


def stream(
    project: Path, *cmd: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run ``cmd``, showing its output as it comes; return its exit code and output."""
    lines = []
    with subprocess.Popen(
        cmd,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return process.returncode, "".join(lines)


def git(project: Path, *args: str) -> str:
    try:
        return output(project, "git", *args)
    except (ShipError, FileNotFoundError) as error:
        raise ShipError(
            f"no git revision to ship ({error}): commit the project to a git "
            "repository (`git init`, `git commit`)"
        ) from error


def revision(target: Target) -> tuple[str, str]:
    """The short revision for the tag and the full one for the label, both marked -dirty."""
    head = git(target.project, "rev-parse", "HEAD")
    dirty = bool(git(target.project, "status", "--porcelain", "--", "."))
    if dirty and target.settings["require_clean_tree"]:
        raise ShipError(
            "the working tree has uncommitted changes and require_clean_tree forbids "
            "them: commit or stash"
        )
    mark = "-dirty" if dirty else ""
    return head[:12] + mark, head + mark


def owner(target: Target) -> str:
    """Who an uploaded file belongs to: this project, known by its repository's first
    commit (shared by every clone, unlike its name), and the environment."""
    roots = git(target.project, "rev-list", "--max-parents=0", "HEAD").split()
    return f"{project_name(target.project)}@{min(roots)[:12]}/{target.env}"


def docker_ready() -> None:
    if shutil.which("docker") is None:
        raise ShipError(
            "no docker command: install Docker (https://docs.docker.com/get-docker/)"
        )
    result = subprocess.run(
        ["docker", "info"], capture_output=True, text=True, check=False
    )
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise ShipError(
            f"no Docker daemon answers ({reason}): start Docker, or point DOCKER_HOST "
            "at a running engine"
        )


def build(target: Target, docker_args: list[str]) -> str:
    """Build the image with BuildKit, tagged with the git revision; return the tag."""
    short, full = revision(target)
    docker_ready()
    tag = f"{target.settings['image']}:{short}"
    cmd = ["docker", "build", "--tag", tag, "--build-arg", f"GIT_REVISION={full}"]
    cmd += [
        arg
        for name in PROXY_VARIABLES
        if name in os.environ
        for arg in ("--build-arg", name)
    ]
    if ca_bundle := target.settings["ca_bundle"]:
        bundle = (target.project / Path(ca_bundle).expanduser()).resolve()
        if not bundle.is_file():
            raise ShipError(
                f"ca_bundle {ca_bundle!r} is not a file: fix the path in "
                f"conf/{target.env}/deploy.yml (or conf/base/deploy.yml)"
            )
        cmd += ["--secret", f"id=ca-bundle,src={bundle}"]
    print(f"Building {tag} for environment {target.env}", flush=True)
    code, log = stream(
        target.project,
        *cmd,
        *docker_args,
        ".",
        env=os.environ | {"DOCKER_BUILDKIT": "1"},
    )
    if code:
        hint = ", see its output above"
        if "buildx" in log:
            hint = (
                ": this Docker CLI needs the buildx plugin for BuildKit (Docker "
                "Desktop has it; on Linux install docker-buildx)"
            )
        raise ShipError(f"docker build of {tag} failed{hint}")
    print(f"Built {tag}")
    return tag


def push(target: Target) -> str:
    """Push the image of this revision; record and return its pinned name, image@sha256:..."""
    docker_ready()
    image = target.settings["image"]
    tag = f"{image}:{revision(target)[0]}"
    local = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, check=False
    )
    if local.returncode:
        raise ShipError(
            f"no local image {tag}: run `nox -s build -- --env {target.env}` first "
            "(the tag follows the git revision)"
        )
    code, log = stream(target.project, "docker", "push", tag)
    if code:
        registry = image.split("/")[0]
        if re.search(
            r"unauthorized|authenticat|denied|credentials", log, re.IGNORECASE
        ):
            raise ShipError(
                f"{registry} refused the push, not logged in: run `gcloud auth "
                f"configure-docker {registry}` (or `docker login {registry}`), then "
                "push again"
            )
        raise ShipError(f"docker push {tag} failed, see its output above")
    digests = json.loads(
        output(
            target.project,
            *("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", tag),
        )
    )
    pinned = next((d for d in digests if d.startswith(image + "@sha256:")), None)
    if pinned is None:
        raise ShipError(f"the registry reported no digest for {tag}: push again")
    target.image_file.parent.mkdir(parents=True, exist_ok=True)
    target.image_file.write_text(pinned + "\n")
    print(f"Pushed {tag}\nRecorded {pinned} in {target.shown(target.image_file)}")
    return pinned


def pushed_image(target: Target) -> str:
    """The image `push` recorded for the environment, by digest."""
    if not target.image_file.exists():
        raise ShipError(
            f"no image to run: {target.shown(target.image_file)} is missing. Run "
            f"`nox -s push -- --env {target.env}` first, or name one with "
            "`nox -s generate -- --image <image>`"
        )
    return target.image_file.read_text().strip()


def credentials_error(error: Exception) -> ShipError:
    return ShipError(
        f"no Google Cloud credentials ({error.__class__.__name__}): run `gcloud auth "
        "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
        "service account key file"
    )


def dags_folder(target: Target) -> tuple[str, str]:
    """The bucket and prefix of the DAG folder: configured, or asked of Composer."""
    folder = target.settings["dags_folder"] or composer_dags_folder(target)
    match = re.fullmatch(r"gs://([^/]+)/?(.*?)/?", folder)
    if not match:
        raise ShipError(
            f"dags_folder {folder!r} is not a gs://<bucket>/<folder> address: fix it "
            f"in conf/{target.env}/deploy.yml"
        )
    return match.group(1), match.group(2)


def composer_dags_folder(target: Target) -> str:
    from google.api_core import exceptions  # noqa: PLC0415 (the deploy group's)
    from google.auth.exceptions import DefaultCredentialsError  # noqa: PLC0415
    from google.cloud.orchestration.airflow import service_v1  # noqa: PLC0415

    settings = target.settings
    if not settings["composer_environment"]:
        raise ShipError(
            f"neither dags_folder nor composer_environment is set for environment "
            f"{target.env}: set one in conf/{target.env}/deploy.yml"
        )
    name = (
        f"projects/{settings['gcp_project_id']}/locations/{settings['region']}"
        f"/environments/{settings['composer_environment']}"
    )
    try:
        environment = service_v1.EnvironmentsClient().get_environment(name=name)
    except DefaultCredentialsError as error:
        raise credentials_error(error) from error
    except (exceptions.NotFound, exceptions.PermissionDenied) as error:
        raise ShipError(
            f"Composer environment {name} not found or not yours to read "
            f"({error.message}; reading it takes composer.environments.get): check "
            f"gcp_project_id and region in conf/{target.env}/airflow.yml and "
            f"composer_environment in conf/{target.env}/deploy.yml, or set dags_folder"
        ) from error
    return environment.config.dag_gcs_prefix


def md5(path: Path) -> str:
    """The MD5 of a file as Cloud Storage reports it (base64)."""
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def dag_files(target: Target) -> dict[str, Path]:
    """The environment's DAG files by their path under dags/<env>/: the modules the
    DAGs import first, so that a DAG never lands before what it imports."""
    files = [
        path
        for path in sorted(target.dags.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
    ]
    if not files:
        raise ShipError(
            f"no DAG files in {target.shown(target.dags)}: run "
            f"`nox -s generate -- --env {target.env}` first"
        )
    files.sort(key=lambda path: path.name.endswith("_dag.py"))
    return {path.relative_to(target.dags).as_posix(): path for path in files}


def remote_files(target: Target, bucket_name: str, prefix: str) -> tuple[Any, dict]:
    """The DAG folder's bucket and the files in it, once the permissions that an
    upload needs are known to be granted."""
    from google.api_core import exceptions  # noqa: PLC0415 (the deploy group's)
    from google.auth.exceptions import DefaultCredentialsError  # noqa: PLC0415
    from google.cloud import storage  # noqa: PLC0415

    # The client fetches each bucket's metadata on the side, for its traces: a request
    # that takes storage.buckets.get, which an upload has no need of.
    os.environ.setdefault("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")
    try:
        client = storage.Client(project=target.settings["gcp_project_id"])
        bucket = client.bucket(bucket_name)
        granted = set(bucket.test_iam_permissions(list(UPLOAD_PERMISSIONS)))
        if missing := [p for p in UPLOAD_PERMISSIONS if p not in granted]:
            raise ShipError(
                f"no permission to upload to gs://{bucket_name}: missing "
                f"{', '.join(missing)}. Ask for a role with "
                f"{', '.join(UPLOAD_PERMISSIONS)} on that bucket, such as "
                "roles/storage.objectUser"
            )
        listed = client.list_blobs(bucket, prefix=f"{prefix}/" if prefix else None)
        return bucket, {blob.name: blob for blob in listed}
    except DefaultCredentialsError as error:
        raise credentials_error(error) from error
    except exceptions.NotFound as error:
        raise ShipError(
            f"bucket {bucket_name} not found: check dags_folder (or the Composer "
            f"environment) in conf/{target.env}/deploy.yml"
        ) from error
    except exceptions.Forbidden as error:
        raise ShipError(
            f"no access to bucket {bucket_name} ({error.message}): ask for "
            f"{', '.join(UPLOAD_PERMISSIONS)} on it, such as roles/storage.objectUser"
        ) from error


def upload(target: Target, dry_run: bool) -> str:
    """Make the DAG folder hold exactly the environment's DAG files, as far as its own
    files go; return the folder's address."""
    files = dag_files(target)
    bucket_name, prefix = dags_folder(target)
    where = f"gs://{bucket_name}/{prefix}".rstrip("/")
    mine = owner(target)
    bucket, remote = remote_files(target, bucket_name, prefix)

    names = {
        f"{prefix}/{relative}".lstrip("/"): path for relative, path in files.items()
    }
    changes = []
    for name, path in names.items():
        blob = remote.get(name)
        if blob is None:
            changes.append(("add", name, path, 0))
        elif (theirs := (blob.metadata or {}).get(OWNER)) != mine:
            raise ShipError(
                f"gs://{bucket_name}/{name} exists and belongs to "
                f"{theirs or 'no deployment of this template'}, not {mine}: rename the "
                "DAG, or remove that file if it is an old copy of this project"
            )
        elif blob.md5_hash != md5(path):
            changes.append(("replace", name, path, blob.generation))
    # Stale files go last, DAGs before the modules they imported.
    stale = [
        blob
        for name, blob in remote.items()
        if name not in names and (blob.metadata or {}).get(OWNER) == mine
    ]
    stale.sort(key=lambda blob: not blob.name.endswith("_dag.py"))
    changes += [("remove", blob.name, None, blob.generation) for blob in stale]

    for action, name, _, _ in changes:
        print(f"  {action:<8} gs://{bucket_name}/{name}")
    unchanged = len(names) - sum(action != "remove" for action, *_ in changes)
    print(f"{where}: {len(changes)} to change, {unchanged} unchanged ({mine})")
    if dry_run or not changes:
        print("Dry run: nothing changed" if dry_run else "Nothing to change")
        return where
    for action, name, path, generation in changes:
        blob = bucket.blob(name)
        # Each object appears whole or not at all; the generation guards against a
        # concurrent upload, and the checksum against a corrupted one.
        if action == "remove":
            blob.delete(if_generation_match=generation)
        else:
            blob.metadata = {OWNER: mine}
            blob.upload_from_filename(
                path,
                content_type="text/x-python",
                if_generation_match=generation,
                checksum="md5",
            )
    print(f"{where} now holds the {len(names)} DAG file(s) of {mine}")
    return where


def dag_ids(target: Target) -> list[str]:
    pattern = re.compile(r"""dag_id\s*=\s*["']([^"']+)["']""")
    files = [path for path in dag_files(target).values() if path.suffix == ".py"]
    return [dag_id for path in files for dag_id in pattern.findall(path.read_text())]


def summary(target: Target) -> None:
    bucket_name, prefix = dags_folder(target)
    image = (
        target.image_file.read_text().strip()
        if target.image_file.exists()
        else "(none recorded: run `nox -s push`)"
    )
    print(
        f"Deployed environment {target.env}\n"
        f"  image     {image}\n"
        f"  DAG ids   {', '.join(dag_ids(target)) or '(none found)'}\n"
        f"  DAG files gs://{bucket_name}/{prefix}: {', '.join(dag_files(target))}"
    )
