"""`nox -s upload` of a baked project against a Cloud Storage emulator on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from components import emulated_storage, gcs_emulator
from conftest import bake, clean_env

pytestmark = pytest.mark.slow

BUCKET = "composer-bucket"
OWNER = "kedro-project"


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator() as url:
        yield url


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("upload"))
    (project / "conf/local/deploy.yml").write_text(f"dags_folder: gs://{BUCKET}/dags\n")
    return project


@pytest.fixture
def project(baked):
    """The baked project with two DAG files of its own, fresh for each test."""
    dags = baked / "dags"
    for path in dags.glob("*"):
        path.unlink()
    dags.mkdir(exist_ok=True)
    (dags / "spaceflights_dag.py").write_text('DAG_ID = "spaceflights"\n')
    (dags / "spaceflights_backfill_dag.py").write_text('DAG_ID = "spaceflights-backfill"\n')
    return baked


@pytest.fixture
def bucket(emulator):
    client = emulated_storage(emulator)
    bucket = client.bucket(BUCKET)
    if bucket.exists():
        bucket.delete(force=True)
    return client.create_bucket(BUCKET)


def upload(project: Path, emulator: str, *args: str, **env: str) -> tuple[int, str]:
    """Run `nox -s upload`; its exit code and output (nox passes on the session's stderr)."""
    env = {"STORAGE_EMULATOR_HOST": emulator} | env
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


def test_upload_puts_the_dags_where_composer_reads_them(project, emulator, bucket):
    code, output = upload(project, emulator)

    assert code == 0, output
    local = {f"dags/{path.name}": path.read_bytes() for path in (project / "dags").iterdir()}
    assert contents(bucket) == local
    for blob in bucket.client.list_blobs(bucket):
        assert blob.metadata == {OWNER: project.name}


def test_reupload_replaces_changed_files_and_removes_only_its_own_stale_ones(project, emulator, bucket):
    upload(project, emulator)
    bucket.blob("dags/other_team_dag.py").upload_from_string("# not ours\n")
    (project / "dags/spaceflights_dag.py").write_text('DAG_ID = "spaceflights"  # changed\n')
    (project / "dags/spaceflights_backfill_dag.py").unlink()

    code, output = upload(project, emulator)

    assert code == 0, output
    assert contents(bucket) == {
        "dags/spaceflights_dag.py": b'DAG_ID = "spaceflights"  # changed\n',
        "dags/other_team_dag.py": b"# not ours\n",
    }
    assert "replace  gs://composer-bucket/dags/spaceflights_dag.py" in output
    assert "remove   gs://composer-bucket/dags/spaceflights_backfill_dag.py" in output


def test_dry_run_prints_the_changes_and_makes_none(project, emulator, bucket):
    upload(project, emulator)
    before = contents(bucket)
    (project / "dags/spaceflights_dag.py").write_text("# changed\n")
    (project / "dags/new_dag.py").write_text("# new\n")

    code, output = upload(project, emulator, "--dry-run")

    assert code == 0, output
    assert "add      gs://composer-bucket/dags/new_dag.py" in output
    assert "replace  gs://composer-bucket/dags/spaceflights_dag.py" in output
    assert "Dry run: nothing changed" in output
    assert contents(bucket) == before


def test_a_file_of_another_project_is_never_overwritten(project, emulator, bucket):
    bucket.blob("dags/spaceflights_dag.py").upload_from_string("# someone else's\n")

    code, output = upload(project, emulator)

    assert code != 0
    assert "ERROR: gs://composer-bucket/dags/spaceflights_dag.py exists and was not uploaded by spaceflights" in output
    assert contents(bucket) == {"dags/spaceflights_dag.py": b"# someone else's\n"}, "nothing is half done"


def test_a_missing_bucket_fails_clearly(project, emulator):
    bucket = emulated_storage(emulator).bucket(BUCKET)
    if bucket.exists():
        bucket.delete(force=True)

    code, output = upload(project, emulator)

    assert code != 0
    assert "ERROR: bucket composer-bucket not found: check dags_folder" in output


def test_missing_credentials_fail_clearly(project, emulator):
    # Against Google itself, with credentials that are not there.
    code, output = upload(
        project, emulator, STORAGE_EMULATOR_HOST="", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent.json"
    )

    assert code != 0
    assert "ERROR: no Google Cloud credentials" in output
    assert "gcloud auth application-default login" in output
