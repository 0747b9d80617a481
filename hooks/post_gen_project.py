"""Remove the optional parts the user turned off, then tidy the baked project.

Cookiecutter runs this file inside the new project after rendering it with Jinja.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# The files of each optional part, removed when its answer is "no"; `{python_package}`
# stands for the package's name.
OPTIONAL_PARTS = {
    "mlflow_tracking": [
        "conf/base/mlflow.yml",
        "conf/gcp/mlflow.yml",
        "src/{python_package}_deploy/mlflow_hooks.py",
        "src/{python_package}_deploy/mlflow_runs.py",
    ],
    "github_actions": [".github"],
}


def remove_unwanted(project: Path, answers: dict) -> list[Path]:
    """Delete the files of every optional part answered "no"; return what went."""
    removed = []
    for switch, paths in OPTIONAL_PARTS.items():
        if answers[switch] == "no":
            for path in (project / path.format(**answers) for path in paths):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
    return removed


def remove_empty_dirs(project: Path) -> None:
    """Drop folders left empty by the removals (data folders keep their .gitkeep)."""
    for folder in sorted(project.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def main() -> None:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    project = Path.cwd()
    remove_unwanted(project, answers)
    remove_empty_dirs(project)


if __name__ == "__main__":
    main()
