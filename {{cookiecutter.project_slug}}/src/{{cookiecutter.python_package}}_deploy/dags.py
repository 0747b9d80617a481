"""Write the pipelines' Airflow DAGs into a folder, whole files or none.

kedro-airflow renders ``airflow_dag.j2`` (``kedro airflow create``) and writes as it
renders, so this renders into a temporary folder first; the DAGs are formatted,
joined by the MLflow helper they import, and then the folder's files become exactly
these. Every value of the project reaches a DAG through one of ``TEMPLATE_FUNCTIONS``,
so no name, tag or setting can break out of the string it belongs to.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from kedro.utils import find_kedro_project

from .plan import DEPLOY_SUFFIX

TEMPLATE = Path(__file__).with_name("airflow_dag.j2")
PACKAGE = __name__.rpartition(".")[0].removesuffix(DEPLOY_SUFFIX)  # the project's
HELPER = Path(__file__).with_name("mlflow_runs.py")


def helper_module() -> str | None:
    """The name the DAGs import the MLflow helper by: one per version of its code, so
    a DAG always imports the very helper it was generated with. None without MLflow."""
    if not HELPER.exists():
        return None
    digest = hashlib.sha256(HELPER.read_bytes()).hexdigest()[:10]
    return f"{PACKAGE}_mlflow_{digest}"


def _python(value: Any) -> str:
    """``value`` as a Python literal that evaluates to it."""
    if isinstance(value, datetime.date):
        return f"datetime({value.year}, {value.month}, {value.day}, tzinfo=UTC)"
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_python(item) for item in value) + "]"
    if isinstance(value, tuple):
        return (
            "("
            + ", ".join(_python(item) for item in value)
            + ("," if len(value) == 1 else "")
            + ")"
        )
    if isinstance(value, dict):
        items = (f"{_python(key)}: {_python(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"Cannot write {value!r} into a DAG")


def _markup(text: str) -> Any:
    """``text`` as is: kedro-airflow's Jinja escapes HTML otherwise."""
    from markupsafe import Markup  # noqa: PLC0415 (Jinja's own, only when rendering)

    return Markup(text)


def py(value: Any) -> Any:
    """A Python literal, for a value Airflow does not render as a template."""
    return _markup(_python(value))


def lit(value: Any) -> Any:
    """A Python literal that Airflow takes as it is: for a value in a field Airflow
    renders, where braces would be Jinja and a `.sh` or `.yaml` ending a file name."""
    return _markup(f"literal({_python(value)})")


def doc(value: Any, cell: bool = False) -> Any:
    """Text inside the DAG's docstring: escaped so it cannot end the string; as a
    ``cell`` of its Markdown table, on one line and with its `|` escaped."""
    text = str(value)
    if cell:
        text = " ".join(text.splitlines()).replace("|", "\\|")
    escaped = "".join(
        "\\\\"
        if char == "\\"
        else '\\"'
        if char == '"'
        else char
        if char.isprintable() or char == "\n"
        else ascii(char)[1:-1]
        for char in text
    )
    return _markup(escaped)


TEMPLATE_FUNCTIONS = {"py": py, "lit": lit, "doc": doc}


def write_dags(
    target: Path,
    env: str,
    pipelines: str,
    params: list[str],
    extra_env: dict[str, str] | None = None,
) -> list[Path]:
    """Render the DAGs of ``pipelines`` for Kedro environment ``env`` into ``target``,
    which then holds these files and no others.

    ``params`` are `key=value` settings over conf/*/airflow.yml; ``extra_env``, the
    environment variables `kedro airflow create` gets besides this process's. Raises
    ``subprocess.CalledProcessError`` (kedro has printed why) and changes nothing.
    """
    project = find_kedro_project(Path.cwd()) or Path.cwd()
    kedro = str(Path(sys.executable).with_name("kedro"))  # the project's own
    build = project / "build"
    build.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build) as scratch:
        folder = Path(scratch) / "dags"
        command = [kedro, "airflow", "create", f"--jinja-file={TEMPLATE}"]
        command += [
            f"--target-dir={folder}",
            f"--env={env}",
            f"--pipelines={pipelines}",
        ]
        command += ["--params", ",".join(params)] if params else []
        # Making DAGs logs no MLflow run: kedro-mlflow stays off (and away from the server).
        env = os.environ | {"KEDRO_MLFLOW": "off"} | (extra_env or {})
        subprocess.run(command, cwd=project, check=True, env=env)
        dags = sorted(folder.iterdir())
        if importlib.util.find_spec("ruff"):  # the dev tools: long values, short lines
            ruff = [sys.executable, "-m", "ruff", "format", "--quiet", "--no-cache"]
            subprocess.run([*ruff, *dags], cwd=project, check=True)
        helper = helper_module()
        if helper and any(f"import {helper} " in dag.read_text() for dag in dags):
            shutil.copyfile(HELPER, folder / f"{helper}.py")
        written = sorted(path.name for path in folder.iterdir())
        _replace(target, folder, Path(scratch) / "old")
    return [target / name for name in written]


def _replace(target: Path, folder: Path, old: Path) -> None:
    """Make ``target`` the ``folder``, by two renames where they share a disk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if target.exists():
            os.replace(target, old)
        os.replace(folder, target)
    except OSError:  # another file system: copy, then drop what is not new
        target.mkdir(exist_ok=True)
        for path in folder.iterdir():
            shutil.copyfile(path, target / f".{path.name}.part")
            os.replace(target / f".{path.name}.part", target / path.name)
        for path in target.iterdir():
            if not (folder / path.name).exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
