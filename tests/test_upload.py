"""`nox -s upload` of a baked project against a Cloud Storage emulator on 127.0.0.1,
seen through a proxy that records each request and can withhold permissions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from components import emulated_storage, gcs_emulator
from conftest import bake, clean_env

pytestmark = pytest.mark.slow

BUCKET = "composer-bucket"
OWNER = "kedro-deployment"  # ship.OWNER: the metadata key of an upload's owner
HELPER = "spaceflights_mlflow_0123456789.py"  # what the DAGs import, as generate names it


class StorageProxy(ThreadingHTTPServer):
    """Forwards to the emulator; records (method, object name or path); answers
    testIamPermissions with ``granted`` alone when that is set."""

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), Forward)
        self.upstream = upstream
        self.granted: set[str] | None = None
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[tuple[str, str]]:
        """The objects changed, in order: ("upload" | "delete", name)."""
        return [(method, name) for method, name in self.seen if method in {"upload", "delete"}]


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StorageProxy

    def log_message(self, *args) -> None:
        pass

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        if url.path.endswith("/iam/testPermissions") and self.server.granted is not None:
            asked = parse_qs(url.query)["permissions"]
            granted = [p for p in asked if p in self.server.granted]
            self.answer(200, json.dumps({"kind": "storage#testIamPermissionsResponse", "permissions": granted}))
            return
        if url.path.startswith("/upload/"):
            name = parse_qs(url.query).get("name") or re.findall(rb'"name": ?"([^"]+)"', body)[:1]
            self.server.seen.append(("upload", name[0].decode() if isinstance(name[0], bytes) else name[0]))
        elif self.command == "DELETE":
            self.server.seen.append(("delete", unquote(url.path.split("/o/", 1)[1])))
        else:
            self.server.seen.append((self.command, unquote(url.path)))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
        response = requests.request(self.command, self.server.upstream + self.path, data=body, headers=headers)
        self.answer(response.status_code, response.content, response.headers.get("Content-Type"))

    def answer(self, status: int, body: str | bytes, content_type: str | None = "application/json") -> None:
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward


@contextmanager
def storage_proxy(upstream: str) -> Iterator[StorageProxy]:
    proxy = StorageProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def git(project: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=project, check=True, capture_output=True, text=True).stdout.strip()


def repository(project: Path, dags_folder: str = f"gs://{BUCKET}/dags") -> Path:
    """``project`` in a git repository of its own, uploading to ``dags_folder``."""
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Bake")
    with (project / "conf/gcp/deploy.yml").open("a") as deploy:
        deploy.write(f"dags_folder: {dags_folder}\n")
    return project


def owner(project: Path, env: str = "gcp") -> str:
    return f"spaceflights@{git(project, 'rev-list', '--max-parents=0', 'HEAD')[:12]}/{env}"


def write_dags(project: Path, env: str = "gcp", helper: str = HELPER) -> Path:
    """Stand in for `nox -s generate`: two DAGs and the helper they import."""
    dags = project / "dags" / env
    for path in dags.glob("*"):
        path.unlink()
    dags.mkdir(parents=True, exist_ok=True)
    module = helper.removesuffix(".py")
    (dags / "spaceflights_dag.py").write_text(f'import {module}\nDAG_ID = "spaceflights"\n')
    (dags / "spaceflights_backfill_dag.py").write_text(f'import {module}\nDAG_ID = "spaceflights-backfill"\n')
    (dags / helper).write_text("# the MLflow helper\n")
    return dags


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator() as url, storage_proxy(url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> Path:
    return repository(bake(tmp_path_factory.mktemp("upload")))


@pytest.fixture
def project(baked, emulator):
    """The baked project with its DAG files, fresh for each test, as is the proxy."""
    write_dags(baked)
    emulator.granted = None
    emulator.seen.clear()
    return baked


@pytest.fixture
def bucket(emulator):
    client = emulated_storage(emulator.upstream)
    bucket = client.bucket(BUCKET)
    if bucket.exists():
        bucket.delete(force=True)
    return client.create_bucket(BUCKET)


def upload(project: Path, emulator: StorageProxy, *args: str, **env: str) -> tuple[int, str]:
    """Run `nox -s upload`; its exit code and output (nox passes on the session's stderr)."""
    env = {"STORAGE_EMULATOR_HOST": emulator.url} | env
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--non-interactive", "-s", "upload", "--", *args],
        cwd=project,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def contents(bucket) -> dict[str, bytes]:
    return {blob.name: blob.download_as_bytes() for blob in bucket.client.list_blobs(bucket)}


def test_upload_puts_the_dags_where_composer_reads_them_helper_first(project, emulator, bucket):
    code, output = upload(project, emulator)

    assert code == 0, output
    local = {f"dags/{path.name}": path.read_bytes() for path in (project / "dags/gcp").iterdir()}
    assert contents(bucket) == local
    for blob in bucket.client.list_blobs(bucket):
        assert blob.metadata == {OWNER: owner(project)}
    written = [name for _, name in emulator.writes()]
    assert written[0] == f"dags/{HELPER}", "no DAG may land before the helper it imports"
    assert sorted(written) == sorted(local)
    # Reading the bucket itself takes storage.buckets.get, which roles/storage.objectUser lacks.
    assert ("GET", f"/storage/v1/b/{BUCKET}") not in emulator.seen, emulator.seen


def test_reupload_replaces_changed_files_and_removes_only_its_own_stale_ones(project, emulator, bucket):
    upload(project, emulator)
    bucket.blob("dags/other_team_dag.py").upload_from_string("# not ours\n")
    new_helper = "spaceflights_mlflow_9876543210.py"
    dags = write_dags(project, helper=new_helper)
    (dags / "spaceflights_backfill_dag.py").unlink()
    emulator.seen.clear()

    code, output = upload(project, emulator)

    assert code == 0, output
    assert contents(bucket) == {
        "dags/spaceflights_dag.py": (dags / "spaceflights_dag.py").read_bytes(),
        f"dags/{new_helper}": b"# the MLflow helper\n",
        "dags/other_team_dag.py": b"# not ours\n",
    }
    assert "replace  gs://composer-bucket/dags/spaceflights_dag.py" in output
    assert "remove   gs://composer-bucket/dags/spaceflights_backfill_dag.py" in output
    # The new helper before the DAG that imports it; the old one after the DAGs that did.
    assert emulator.writes() == [
        ("upload", f"dags/{new_helper}"),
        ("upload", "dags/spaceflights_dag.py"),
        ("delete", "dags/spaceflights_backfill_dag.py"),
        ("delete", f"dags/{HELPER}"),
    ]


def test_dry_run_prints_the_changes_and_makes_none(project, emulator, bucket):
    upload(project, emulator)
    before = contents(bucket)
    (project / "dags/gcp/spaceflights_dag.py").write_text("# changed\n")
    (project / "dags/gcp/new_dag.py").write_text("# new\n")
    emulator.seen.clear()

    code, output = upload(project, emulator, "--dry-run")

    assert code == 0, output
    assert "add      gs://composer-bucket/dags/new_dag.py" in output
    assert "replace  gs://composer-bucket/dags/spaceflights_dag.py" in output
    assert "Dry run: nothing changed" in output
    assert contents(bucket) == before
    assert emulator.writes() == []


@pytest.fixture
def namesake(tmp_path) -> Path:
    """Another project of the same name, in a repository of its own."""
    other = repository(bake(tmp_path))
    write_dags(other)
    return other


def test_a_file_of_another_project_of_the_same_name_is_never_overwritten(project, namesake, emulator, bucket):
    assert upload(namesake, emulator)[0] == 0
    theirs = contents(bucket)
    (project / "dags/gcp/new_dag.py").write_text("# would be added first\n")

    code, output = upload(project, emulator)

    assert code != 0
    assert re.search(
        rf"ERROR: gs://composer-bucket/dags/\S+ exists and belongs to {owner(namesake)}, not {owner(project)}: "
        "rename the DAG",
        output,
    ), output
    assert contents(bucket) == theirs, "nothing is half done"


def test_a_file_no_upload_made_is_never_overwritten(project, emulator, bucket):
    bucket.blob("dags/spaceflights_dag.py").upload_from_string("# someone else's\n")

    code, output = upload(project, emulator)

    assert code != 0
    assert "dags/spaceflights_dag.py exists and belongs to no deployment of this template" in output
    assert contents(bucket) == {"dags/spaceflights_dag.py": b"# someone else's\n"}


def test_without_the_permissions_an_upload_needs_it_says_which_and_changes_nothing(project, emulator, bucket):
    emulator.granted = {"storage.objects.list"}

    code, output = upload(project, emulator)

    assert code != 0
    assert (
        f"ERROR: no permission to upload to gs://{BUCKET}: missing storage.objects.create, "
        "storage.objects.delete. Ask for a role with" in output
    )
    assert "roles/storage.objectUser" in output
    assert contents(bucket) == {}


def test_a_missing_bucket_fails_clearly(project, emulator):
    bucket = emulated_storage(emulator.upstream).bucket(BUCKET)
    if bucket.exists():
        bucket.delete(force=True)

    code, output = upload(project, emulator)

    assert code != 0
    assert "ERROR: bucket composer-bucket not found: check dags_folder" in output


def test_no_generated_dags_fail_clearly(project, emulator, bucket):
    for path in (project / "dags/gcp").iterdir():
        path.unlink()

    code, output = upload(project, emulator)

    assert code != 0
    assert "ERROR: no DAG files in dags/gcp: run `nox -s generate -- --env gcp` first" in output


def test_missing_credentials_fail_clearly(project, emulator):
    # Against Google itself, with credentials that are not there.
    code, output = upload(
        project, emulator, STORAGE_EMULATOR_HOST="", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent.json"
    )

    assert code != 0
    assert "ERROR: no Google Cloud credentials" in output
    assert "gcloud auth application-default login" in output
