"""Write the pipelines' Airflow DAGs into a folder, whole files or none.

`nox -s generate` (dags/, for Composer) and `nox -s deploy -- --target local` run
this. kedro-airflow writes as it renders, so it renders into a temporary folder
first; the files then move in, with the MLflow helper the DAGs import
(src/<package>/mlflow_runs.py, as <package>_mlflow.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATE = "deploy/airflow_dag.j2"


def package_name() -> str:
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    return pyproject["tool"]["kedro"]["package_name"]


def write_dags(
    target: Path, env: str, pipelines: str, params: list[str], kedro: str = "kedro"
) -> list[Path]:
    """Render the DAGs of ``pipelines`` for Kedro environment ``env`` into ``target``.

    ``params`` are `key=value` settings over conf/*/airflow.yml. Raises
    ``subprocess.CalledProcessError`` (kedro has printed why) and writes nothing.
    """
    build = PROJECT / "build"
    build.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build) as folder:
        command = [kedro, "airflow", "create", f"--jinja-file={TEMPLATE}"]
        command += [
            f"--target-dir={folder}",
            f"--env={env}",
            f"--pipelines={pipelines}",
        ]
        command += ["--params", ",".join(params)] if params else []
        subprocess.run(command, cwd=PROJECT, check=True)
        dags = sorted(Path(folder).iterdir())
        package = package_name()
        if any(f"import {package}_mlflow " in dag.read_text() for dag in dags):
            helper = PROJECT / "src" / package / "mlflow_runs.py"
            shutil.copyfile(helper, Path(folder) / f"{package}_mlflow.py")
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted(Path(folder).iterdir()):
            os.replace(path, target / path.name)
            written.append(target / path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("--env", required=True)
    parser.add_argument("--pipelines", required=True)
    parser.add_argument("--params", action="append", default=[], help="key=value")
    args = parser.parse_args(argv)
    try:
        written = write_dags(args.target, args.env, args.pipelines, args.params)
    except subprocess.CalledProcessError:
        return 1
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
