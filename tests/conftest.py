"""Baking helpers shared by the template's tests."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).parents[1]
TEMPLATE = json.loads((ROOT / "cookiecutter.json").read_text())
PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
# The real Spaceflights files, when this checkout sits beside the shared folder.
REFERENCE_DATA = Path(os.environ.get("SPACEFLIGHTS_REFERENCE_DATA", ROOT.parent / "shared/reference-data/spaceflights"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def choices(key: str) -> list[str]:
    """The options cookiecutter.json offers for ``key``, default first."""
    return TEMPLATE[key]


def bake(output_dir: Path, **answers: str) -> Path:
    """Bake the template with ``answers`` over the defaults; return the project folder."""
    return Path(
        cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(output_dir), default_config=True)
    )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the virtual environment (and nox session) it runs in.

    Wide columns keep Kedro's rich log lines whole, so tests can read them.
    """
    session = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "NOX_CURRENT_SESSION"}
    env = {k: v for k, v in os.environ.items() if k not in session}
    return env | {"COLUMNS": "200"} | extra


def project_module(project: Path, name: str, package: str = "spaceflights") -> ModuleType:
    """A module of a baked project's deployment layer that needs no Kedro (plan.py),
    imported from its file."""
    path = project / f"src/{package}_deploy/{name}.py"
    spec = importlib.util.spec_from_file_location(f"baked_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` in ``cwd``; fail the test with its output when it fails."""
    result = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode} in {cwd}:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def uv() -> str:
    """The uv of this environment (the test group installs it), else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv") or "uv"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` fails, except in CI, where every real component must be there."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this test must run)")
        pytest.skip(reason)
