"""The cloud environment as code: `nox -s infra -- <action> --env <env>`.

Runs Terraform, or OpenTofu when it is the one installed, in infra/ for one Kedro
environment: its own workspace (named after the environment), terraform.tfvars (the
bake's answers) with infra/<env>.tfvars over it when present.

- ``plan``: ``init``, then ``plan``, saved in build/infra/<env>.tfplan;
- ``apply``: the same, then ``apply`` of that plan, then ``settings``;
- ``settings``: what ``terraform output -json`` says, written into the ``infra``
  block of conf/<env>/globals.yml, which airflow.yml, deploy.yml and mlflow.yml read:
  the next `nox -s deploy -- --env <env>` needs no edits;
- ``validate``: ``init -backend=false`` and ``validate``, which need Google's provider
  from the registry (or a mirror of it); where it cannot be installed, it says so and
  skips them.

Only the standard library and PyYAML, so that the block can be written and tested
without Terraform.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

TOOLS = ("terraform", "tofu")
INSTALL = (
    "install Terraform (https://developer.hashicorp.com/terraform/install) or "
    "OpenTofu (https://opentofu.org/docs/intro/install/), 1.6 or later, and run "
    "`nox -s infra` again"
)
# The outputs of infra/outputs.tf that the settings read, as the keys of the `infra`
# block of globals.yml (conf/base/globals.yml holds the bake's values of each).
SETTINGS = (
    "gcp_project_id",
    "region",
    "operator",
    "cluster",
    "namespace",
    "service_account",
    "image",
    "composer_environment",
    "dags_folder",
    "data_root",
    "mlflow_tracking_uri",
    "mlflow_iap_audience",
)
# What `init` says when it cannot install a provider: no registry, no mirror.
PROVIDER_UNREACHABLE = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "could not connect to registry",
)
# Those that may be null, which `terraform output -json` leaves out rather than print.
NULLABLE = {"cluster", "service_account", "mlflow_tracking_uri", "mlflow_iap_audience"}
BLOCK = "infra"
MARKER = (
    "# Written by `nox -s infra` from what Terraform made (terraform output): apply\n"
    "# again rather than edit it. airflow.yml, deploy.yml and mlflow.yml read it.\n"
)


class InfraError(Exception):
    """A problem the user can fix: the message says what and how."""


def tool() -> str:
    """The path of Terraform, or else of OpenTofu."""
    for name in TOOLS:
        if found := shutil.which(name):
            return found
    raise InfraError(f"neither Terraform nor OpenTofu is installed: {INSTALL}")


def settings_of(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``infra`` block from ``outputs``, as `terraform output -json` prints them
    (``{"<name>": {"value": ..., "type": ..., "sensitive": ...}}``)."""
    missing = [
        name for name in SETTINGS if name not in outputs and name not in NULLABLE
    ]
    if missing:
        raise InfraError(
            f"Terraform's outputs lack {', '.join(missing)}: is infra/ the one this "
            "project was baked with? Apply it again (`nox -s infra -- apply`)"
        )
    return {name: outputs.get(name, {}).get("value") for name in SETTINGS}


def write_settings(globals_file: Path, values: Mapping[str, Any]) -> bool:
    """Put ``values`` into the ``infra`` block at the end of ``globals_file`` (made
    if missing), leaving the rest of the file as it is; return whether it changed."""
    text = globals_file.read_text(encoding="utf-8") if globals_file.exists() else ""
    head, marked, _ = text.partition(MARKER)
    if not marked and BLOCK in (yaml.safe_load(text) or {}):
        raise InfraError(
            f"{globals_file} has an `{BLOCK}` key that `nox -s infra` did not write: "
            "remove it, and the session writes its own"
        )
    block = yaml.safe_dump({BLOCK: dict(values)}, sort_keys=False, allow_unicode=True)
    new = f"{head.rstrip()}\n\n{MARKER}{block}" if head.strip() else MARKER + block
    if new == text:
        return False
    globals_file.parent.mkdir(parents=True, exist_ok=True)
    globals_file.write_text(new, encoding="utf-8")
    return True


class Infra:
    """infra/ of ``project``, for Kedro environment ``env``."""

    def __init__(self, project: Path, env: str):
        self.project, self.env = project, env
        self.folder = project / "infra"
        self.plan_file = project / "build/infra" / f"{env}.tfplan"
        if not self.folder.is_dir():
            raise InfraError(
                f"{self.folder} is missing: the project was baked without it "
                "(infrastructure: no)"
            )

    def run(self, *args: str, capture: bool = False) -> str:
        command = [tool(), f"-chdir={self.folder}", *args]
        print(f"$ {' '.join(command[:1] + command[2:])}", flush=True)
        result = subprocess.run(command, check=False, text=True, capture_output=capture)
        if result.returncode:
            detail = f":\n{result.stderr.strip()}" if capture else " (above)"
            raise InfraError(f"`{' '.join(args[:1])}` failed{detail}")
        return result.stdout if capture else ""

    def var_files(self) -> list[str]:
        own = self.folder / f"{self.env}.tfvars"
        return [f"-var-file={own.name}"] if own.exists() else []

    def init(self) -> None:
        self.run("init", "-input=false")
        self.run("workspace", "select", "-or-create", self.env)

    def plan(self) -> None:
        self.init()
        self.plan_file.parent.mkdir(parents=True, exist_ok=True)
        self.run("plan", "-input=false", f"-out={self.plan_file}", *self.var_files())

    def apply(self) -> None:
        self.plan()
        self.run("apply", "-input=false", str(self.plan_file))
        self.settings()

    def validate(self) -> None:
        """`init` and `validate`, or, where Google's provider cannot be installed
        (no registry, no mirror), say so and skip them."""
        try:
            self.run("init", "-input=false", "-backend=false", capture=True)
        except InfraError as error:
            if not any(sign in str(error) for sign in PROVIDER_UNREACHABLE):
                raise
            print(
                "Skipped `init` and `validate`: Google's provider could not be "
                "installed here (the registry is out of reach, and no mirror is set "
                "in the CLI configuration). `terraform fmt`-clean, parsed and scanned "
                "files are all that was checked."
            )
            return
        self.run("validate")

    def settings(self) -> None:
        self.run("workspace", "select", self.env)  # `apply` made it
        outputs = json.loads(self.run("output", "-json", capture=True) or "{}")
        values = settings_of(outputs)
        globals_file = self.project / "conf" / self.env / "globals.yml"
        changed = write_settings(globals_file, values)
        shown = globals_file.relative_to(self.project)
        print(f"{'Wrote' if changed else 'Unchanged:'} {shown} ({BLOCK}: ...)")
        for command in outputs.get("gke_setup", {}).get("value") or []:
            print(f"  once, for the gke operator's pods: {command}")
