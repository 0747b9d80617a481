"""Ship the project to Cloud Composer: build and push its image, upload its DAGs.

The nox sessions `build`, `push`, `upload` and `deploy` run this file. The image,
GCP project and region are the DAGs' own, from the `default` section of
conf/base/airflow.yml; the rest is in conf/base/deploy.yml; conf/local/deploy.yml
overrides any of them.
Every failure the user can fix ends in one line, `ERROR: <what>: <how to fix it>`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from google.api_core import exceptions
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import storage
from google.cloud.orchestration.airflow import service_v1

PROJECT = Path(__file__).resolve().parents[1]
CONFIG_FILES = [PROJECT / "conf/base/deploy.yml", PROJECT / "conf/local/deploy.yml"]
SHARED = ("image", "gcp_project_id", "region")  # with the DAGs: conf/base/airflow.yml
KEYS = (
    "target",
    "local_mlflow_port",
    "local_airflow_port",
    "image",
    "gcp_project_id",
    "region",
    "composer_environment",
    "dags_folder",
    "require_clean_tree",
    "ca_bundle",
)
IMAGE_FILE = PROJECT / "build/image"
DAGS = PROJECT / "dags"
# Set on every uploaded DAG file: the project it belongs to, so an upload only ever
# replaces or removes its own files in a DAG folder that other projects share.
OWNER = "kedro-project"
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


def settings() -> dict:
    """The DAGs' image, project and region, then conf/base/deploy.yml, then
    conf/local/deploy.yml, key by key."""
    airflow = yaml.safe_load((PROJECT / "conf/base/airflow.yml").read_text()) or {}
    merged = {key: airflow.get("default", {}).get(key) for key in SHARED}
    for path in CONFIG_FILES:
        if path.exists():
            loaded = yaml.safe_load(path.read_text()) or {}
            unknown = set(loaded) - set(KEYS) if isinstance(loaded, dict) else loaded
            if unknown:
                raise ShipError(
                    f"{path.relative_to(PROJECT)} has unknown settings {unknown}: the keys are {KEYS}"
                )
            merged |= loaded
    if not merged.get("image"):
        raise ShipError(
            "no image in conf/base/airflow.yml: set it to <registry>/<repository>/<name>"
        )
    return merged


def project_name() -> str:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["name"]


def output(*cmd: str) -> str:
    """Run ``cmd`` in the project; its stdout, or the ShipError it deserves."""
    result = subprocess.run(
        cmd, cwd=PROJECT, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise ShipError(
            f"{' '.join(cmd)} failed: {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout.strip()


def stream(*cmd: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd``, showing its output as it comes; return its exit code and output."""
    lines = []
    with subprocess.Popen(
        cmd,
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return process.returncode, "".join(lines)


def revision(config: dict) -> tuple[str, str]:
    """The short revision for the tag and the full one for the label, both marked -dirty."""
    try:
        head = output("git", "rev-parse", "HEAD")
    except (ShipError, FileNotFoundError) as error:
        raise ShipError(
            f"no git revision to tag the image with ({error}): "
            "commit the project to a git repository (`git init`, `git commit`)"
        ) from error
    dirty = bool(output("git", "status", "--porcelain", "--", "."))
    if dirty and config.get("require_clean_tree"):
        raise ShipError(
            "the working tree has uncommitted changes and require_clean_tree forbids them: commit or stash"
        )
    mark = "-dirty" if dirty else ""
    return head[:12] + mark, head + mark


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
            f"no Docker daemon answers ({reason}): start Docker, or point DOCKER_HOST at a running engine"
        )


def image_tag(config: dict) -> str:
    return f"{config['image']}:{revision(config)[0]}"


def build(config: dict, docker_args: list[str]) -> str:
    """Build the image with BuildKit, tagged with the git revision; return the tag."""
    short, full = revision(config)
    docker_ready()
    tag = f"{config['image']}:{short}"
    cmd = ["docker", "build", "--tag", tag, "--build-arg", f"GIT_REVISION={full}"]
    cmd += [
        arg
        for name in PROXY_VARIABLES
        if name in os.environ
        for arg in ("--build-arg", name)
    ]
    if config.get("ca_bundle"):
        bundle = (PROJECT / Path(config["ca_bundle"]).expanduser()).resolve()
        if not bundle.is_file():
            raise ShipError(
                f"ca_bundle {config['ca_bundle']!r} is not a file: fix the path in conf/*/deploy.yml"
            )
        cmd += ["--secret", f"id=ca-bundle,src={bundle}"]
    print(f"Building {tag}", flush=True)
    code, log = stream(
        *cmd, *docker_args, ".", env=os.environ | {"DOCKER_BUILDKIT": "1"}
    )
    if code:
        hint = ""
        if "buildx" in log:
            hint = ": this Docker CLI needs the buildx plugin for BuildKit (Docker Desktop has it; on Linux install docker-buildx)"
        raise ShipError(
            f"docker build of {tag} failed{hint or ', see its output above'}"
        )
    print(f"Built {tag}")
    return tag


def push(config: dict) -> str:
    """Push the image of this revision; record and return its pinned name, image@sha256:..."""
    docker_ready()
    tag = image_tag(config)
    local = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, check=False
    )
    if local.returncode:
        raise ShipError(
            f"no local image {tag}: run `nox -s build` first (the tag follows the git revision)"
        )
    code, log = stream("docker", "push", tag)
    if code:
        registry = config["image"].split("/")[0]
        if re.search(
            r"unauthorized|authenticat|denied|credentials", log, re.IGNORECASE
        ):
            raise ShipError(
                f"{registry} refused the push, not logged in: run `gcloud auth configure-docker {registry}` "
                f"(or `docker login {registry}`), then push again"
            )
        raise ShipError(f"docker push {tag} failed, see its output above")
    digests = json.loads(
        output("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", tag)
    )
    pinned = next(
        (name for name in digests if name.startswith(config["image"] + "@sha256:")),
        None,
    )
    if pinned is None:
        raise ShipError(f"the registry reported no digest for {tag}: push again")
    IMAGE_FILE.parent.mkdir(exist_ok=True)
    IMAGE_FILE.write_text(pinned + "\n")
    print(f"Pushed {tag}\nRecorded {pinned} in {IMAGE_FILE.relative_to(PROJECT)}")
    return pinned


def credentials_error(error: Exception) -> ShipError:
    return ShipError(
        f"no Google Cloud credentials ({error.__class__.__name__}): run `gcloud auth application-default login`, "
        "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
    )


def dags_folder(config: dict) -> tuple[str, str]:
    """The bucket and prefix of the DAG folder: configured, or asked of the Composer environment."""
    folder = config.get("dags_folder")
    if not folder:
        folder = composer_dags_folder(config)
    match = re.fullmatch(r"gs://([^/]+)/?(.*?)/?", folder)
    if not match:
        raise ShipError(
            f"dags_folder {folder!r} is not a gs://<bucket>/<folder> address: fix it in conf/*/deploy.yml"
        )
    return match.group(1), match.group(2)


def composer_dags_folder(config: dict) -> str:
    name = (
        f"projects/{config['gcp_project_id']}/locations/{config['region']}"
        f"/environments/{config['composer_environment']}"
    )
    try:
        environment = service_v1.EnvironmentsClient().get_environment(name=name)
    except DefaultCredentialsError as error:
        raise credentials_error(error) from error
    except (exceptions.NotFound, exceptions.PermissionDenied) as error:
        raise ShipError(
            f"Composer environment {name} not found or not yours to read ({error.message}): check "
            "gcp_project_id and region in conf/base/airflow.yml and composer_environment in conf/base/deploy.yml, or set dags_folder"
        ) from error
    return environment.config.dag_gcs_prefix


def md5(path: Path) -> str:
    """The MD5 of a file as Cloud Storage reports it (base64)."""
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def dag_files() -> dict[str, Path]:
    """This project's DAG files, by their path under dags/."""
    files = {
        path.relative_to(DAGS).as_posix(): path
        for path in sorted(DAGS.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
    }
    if not files:
        raise ShipError(
            "no DAG files in dags/: run `nox -s generate -- --env gcp` first"
        )
    return files


def upload(config: dict, dry_run: bool) -> str:
    """Make the DAG folder hold exactly this project's DAG files; return the folder's address."""
    files = dag_files()
    bucket_name, prefix = dags_folder(config)
    where = f"gs://{bucket_name}/{prefix}".rstrip("/")
    owner = project_name()
    try:
        client = storage.Client(project=config["gcp_project_id"])
        bucket = client.get_bucket(bucket_name)
        remote = {
            blob.name: blob
            for blob in client.list_blobs(
                bucket, prefix=f"{prefix}/" if prefix else None
            )
        }
    except DefaultCredentialsError as error:
        raise credentials_error(error) from error
    except exceptions.NotFound as error:
        raise ShipError(
            f"bucket {bucket_name} not found: check dags_folder (or the Composer environment) in conf/base/deploy.yml"
        ) from error
    except exceptions.Forbidden as error:
        raise ShipError(
            f"no access to bucket {bucket_name} ({error.message}): ask for roles/storage.objectAdmin"
        ) from error

    names = {
        f"{prefix}/{relative}".lstrip("/"): path for relative, path in files.items()
    }
    changes = []
    for name, path in names.items():
        blob = remote.get(name)
        if blob is None:
            changes.append(("add", name, path, 0))
        elif (blob.metadata or {}).get(OWNER) != owner:
            raise ShipError(
                f"gs://{bucket_name}/{name} exists and was not uploaded by {owner}: "
                "rename the DAG, or remove that file if it is an old copy"
            )
        elif blob.md5_hash != md5(path):
            changes.append(("replace", name, path, blob.generation))
    stale = [
        blob
        for name, blob in remote.items()
        if name not in names and (blob.metadata or {}).get(OWNER) == owner
    ]
    changes += [("remove", blob.name, None, blob.generation) for blob in stale]

    for action, name, _, _ in changes:
        print(f"  {action:<8} gs://{bucket_name}/{name}")
    unchanged = len(names) - sum(action != "remove" for action, *_ in changes)
    print(f"{where}: {len(changes)} to change, {unchanged} unchanged")
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
            blob.metadata = {OWNER: owner}
            blob.upload_from_filename(
                path,
                content_type="text/x-python",
                if_generation_match=generation,
                checksum="md5",
            )
    print(f"{where} now holds the {len(names)} DAG file(s) of {owner}")
    return where


def dag_ids() -> list[str]:
    pattern = re.compile(r"""dag_id\s*=\s*["']([^"']+)["']""")
    files = [path for path in dag_files().values() if path.suffix == ".py"]
    return [dag_id for path in files for dag_id in pattern.findall(path.read_text())]


def summary(config: dict) -> None:
    bucket_name, prefix = dags_folder(config)
    image = (
        IMAGE_FILE.read_text().strip()
        if IMAGE_FILE.exists()
        else "(none recorded: run `nox -s push`)"
    )
    print(
        "Deployed\n"
        f"  image     {image}\n"
        f"  DAG ids   {', '.join(dag_ids()) or '(none found)'}\n"
        f"  DAG files gs://{bucket_name}/{prefix}: {', '.join(dag_files())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "build", help="build the image; other options go to docker build"
    )
    commands.add_parser(
        "push", help="push the image and record its digest in build/image"
    )
    commands.add_parser("upload", help="upload dags/ to the DAG folder").add_argument(
        "--dry-run", action="store_true"
    )
    commands.add_parser("summary", help="say what is deployed where")
    commands.add_parser("target", help="print where `nox -s deploy` deploys")
    args, docker_args = parser.parse_known_args(argv)
    if docker_args and args.command != "build":
        parser.error(f"unrecognized arguments: {' '.join(docker_args)}")
    try:
        config = settings()
        if args.command == "build":
            build(config, docker_args)
        elif args.command == "push":
            push(config)
        elif args.command == "upload":
            upload(config, args.dry_run)
        elif args.command == "target":
            print(config.get("target") or "local")
        else:
            summary(config)
    except ShipError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
