"""The real components the image and deploy tests need: a Docker engine, the base
image, a registry, a Cloud Storage emulator and an MLflow server, each on 127.0.0.1.

Each helper calls ``require()``: on a machine without the component the test skips
and says why; under CI=true, where `.ci/run` installs them, it fails instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import requests
from conftest import ROOT, clean_env, require
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kedro-composer-template"
# The CA certificates this machine trusts, proxies' among them (update-ca-certificates).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def trusted_ca_bundle() -> str | None:
    """The bundle for a build's `ca-bundle` secret: what this machine trusts, if it says.

    Behind a TLS-intercepting proxy (CI here) the build cannot reach PyPI without it.
    """
    if os.environ.get("SSL_CERT_FILE"):
        return os.environ["SSL_CERT_FILE"]
    return str(SYSTEM_CA_BUNDLE) if SYSTEM_CA_BUNDLE.exists() else None


def docker(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def require_docker() -> None:
    """A Docker engine answering, and a client that builds with BuildKit."""
    require(shutil.which("docker") is not None, "no docker command on this machine")
    require(docker("info", check=False).returncode == 0, "no Docker daemon answers `docker info`")


def ensure_base_image(python_version: str) -> str:
    """The image the Dockerfile's BASE_IMAGE names: present, pulled, or stood in for.

    Where Docker Hub cannot be reached, scripts/stand_in_base_image.sh builds one
    from a debootstrapped Debian under the same name, so the Dockerfile is unchanged.
    """
    tag = f"python:{python_version}-slim-bookworm"
    CACHE.mkdir(parents=True, exist_ok=True)
    # One test process at a time: the other waits, then finds the image.
    with (CACHE / "base-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if docker("image", "inspect", tag, check=False).returncode == 0:
            return tag
        try:
            if docker("pull", tag, check=False, timeout=120).returncode == 0:
                return tag
        except subprocess.TimeoutExpired:
            pass
        can_stand_in = shutil.which("debootstrap") is not None and os.geteuid() == 0
        require(can_stand_in, f"{tag} cannot be pulled, and standing in for it needs root and debootstrap")
        subprocess.run([ROOT / "scripts/stand_in_base_image.sh", python_version], check=True)
    return tag


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited {process.returncode}: {process.stdout.read()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}")


@contextmanager
def serving(cmd: list[str | Path], port: int, name: str) -> Iterator[str]:
    """Run a server on 127.0.0.1:``port`` for the duration; yield its host:port."""
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process, name)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def registry(tmp_path: Path, *, locked: bool = False) -> Iterator[str]:
    """A Docker registry (Debian's docker-registry) on 127.0.0.1, which Docker trusts without TLS.

    ``locked``: it asks for a login that no one has (an empty htpasswd file).
    """
    binary = shutil.which("docker-registry")
    require(binary is not None, "no docker-registry on this machine (Debian package docker-registry)")
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n"
    )
    if locked:
        (tmp_path / "htpasswd").touch()
        config.write_text(
            config.read_text() + f"auth:\n  htpasswd:\n    realm: test\n    path: {tmp_path / 'htpasswd'}\n"
        )
    with serving([binary, "serve", config], port, "docker-registry") as address:
        yield address


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """A Cloud Storage emulator (gcp-storage-emulator, in memory); yield its URL for STORAGE_EMULATOR_HOST."""
    binary = Path(sys.executable).with_name("gcp-storage-emulator")
    require(binary.exists(), "no gcp-storage-emulator beside this Python (the test group installs it)")
    port = free_port()
    cmd = [binary, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"]
    with serving(cmd, port, "gcp-storage-emulator") as address:
        yield f"http://{address}"


@contextmanager
def mlflow_server(mlflow: Path, folder: Path) -> Iterator[str]:
    """A real MLflow tracking server (``mlflow``: a baked project's `.venv/bin/mlflow`) on
    127.0.0.1, keeping its runs in ``folder``; yield its URL, once it answers ``/health``.

    One worker and no job runner: `mlflow server` starts a uvicorn and, by default, a
    pool of job consumers, all stopped with it through their process group.
    """
    port = free_port()
    cmd = [mlflow, "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url, log = f"http://127.0.0.1:{port}", folder / "mlflow-server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(part) for part in cmd],
            cwd=folder,  # its artifacts go to ./mlartifacts
            env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(240):  # it takes ~20 s the first time, importing mlflow and creating its tables
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited {process.returncode}: {log.read_text()}")
            try:
                if requests.get(f"{url}/health", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"mlflow server did not answer {url}/health: {log.read_text()}")
        yield url
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and every process it started in its session (``start_new_session``)."""
    with suppress(ProcessLookupError):  # all gone already
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def emulated_storage(url: str) -> storage.Client:
    """A Cloud Storage client of the emulator at ``url``."""
    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
