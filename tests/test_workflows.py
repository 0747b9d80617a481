"""The baked project's GitHub Actions workflows: ci (pull requests and main) and
deploy (main to dev, a tag or a manual run to prod).

zizmor audits them (its pedantic persona, offline) and must find nothing; every
action is pinned by a full commit SHA; permissions are read-only but for the OIDC
token of the deploy job; authentication is Workload Identity Federation with the
identity infra/ makes. The ci workflow's DAG step runs as it is written in
tests/test_infra_settings.py: the DAGs are generated and loaded in a real Airflow.

actionlint is not run: its PyPI package downloads the binary from GitHub's releases
when it is installed, which these machines cannot reach, and the one npm build
(1.6.22) predates the `vars` context the deploy workflow reads.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import yaml
from conftest import bake

PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("workflows"))


@pytest.fixture(scope="module")
def workflows(project) -> dict[str, dict]:
    folder = project / ".github/workflows"
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))}


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_zizmor_finds_nothing(project):
    zizmor = Path(sys.executable).with_name("zizmor")
    result = subprocess.run(
        [zizmor, "--offline", "--persona", "pedantic", "--no-progress", project / ".github/workflows"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_action_is_pinned_by_commit_and_says_its_version(project, workflows):
    assert set(workflows) == {"ci", "deploy"}
    for name, workflow in workflows.items():
        text = (project / f".github/workflows/{name}.yml").read_text()
        for step in steps(workflow):
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]
                assert re.search(re.escape(step["uses"]) + r" # v\d+\.\d+\.\d+\n", text), "a comment names the version"


def test_permissions_are_read_only_but_the_deploy_jobs_oidc_token(workflows):
    for workflow in workflows.values():
        assert workflow["permissions"] == {"contents": "read"}
    assert "permissions" not in workflows["ci"]["jobs"]["check"]
    assert workflows["deploy"]["jobs"]["deploy"]["permissions"] == {"contents": "read", "id-token": "write"}


def test_deploy_goes_to_dev_from_main_and_to_prod_from_a_tag_or_by_hand(project, workflows):
    deploy = workflows["deploy"]
    triggers = deploy[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert triggers["workflow_dispatch"]["inputs"]["environment"]["options"] == ["dev", "prod"]
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == job["concurrency"]["group"].removeprefix("deploy-")
    expression = job["environment"]
    assert "'prod'" in expression and "'dev'" in expression and "startsWith(github.ref, 'refs/tags/')" in expression
    (auth,) = [step for step in job["steps"] if step.get("uses", "").startswith("google-github-actions/auth@")]
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}, "no key"
    # The identity infra/ makes: its outputs are the variables the job reads.
    outputs = {
        name
        for path in (project / "infra").glob("*.tf")
        for block in hcl2.load(path.open()).get("output", [])
        for name in block
    }
    assert {"workload_identity_provider", "deployer_service_account"} <= outputs
    (command,) = [step["run"] for step in job["steps"] if "nox -s deploy" in step.get("run", "")]
    assert shlex.split(command)[:6] == ["uvx", "nox", "-s", "deploy", "--", "--target"]
