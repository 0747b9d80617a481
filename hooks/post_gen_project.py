"""Remove the optional parts the user turned off, tidy the baked project, and record
where it came from in cruft's .cruft.json, so that `cruft update` can bring it the
template's later changes.

Cookiecutter runs this file inside the new project after rendering it with Jinja.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cookiecutter.config import BUILTIN_ABBREVIATIONS
from cookiecutter.repository import expand_abbreviations, is_repo_url, is_zip_file

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
    "infrastructure": ["infra"],
}
# Answers that belong to this machine and this bake, not to the project.
MACHINE_KEYS = {"_output_dir", "_repo_dir", "_checkout"}
# The folder cookiecutter renders this hook in, the template's: where `_repo_dir` points
# when cookiecutter was given a relative path (`cookiecutter .`). Data, never an answer.
RENDERED_IN = json.loads(r""" {{ working_dir() | tojson }} """)


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


def git(folder: Path, *args: str) -> str | None:
    """What ``git -C <folder> <args>`` prints, or None if it fails."""
    result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def cruft_state(answers: dict) -> dict | str:
    """.cruft.json as `cruft create` writes it, for this bake; or why there is none."""
    template = expand_abbreviations(answers["_template"], BUILTIN_ABBREVIATIONS)
    repo_dir = Path(answers["_repo_dir"])  # a local template's folder, or cookiecutter's clone
    repo_dir = repo_dir if repo_dir.is_absolute() else Path(RENDERED_IN)
    commit = None if is_zip_file(template) else git(repo_dir, "rev-parse", "HEAD")
    if commit is None:
        return f"No .cruft.json: cruft needs a git template, and {answers['_template']} is not a git checkout."
    if not is_repo_url(template):  # a local checkout: cruft clones it by its absolute path
        template = git(repo_dir, "rev-parse", "--show-toplevel")
    template = template.removeprefix("git+")
    context = {k: v for k, v in answers.items() if k not in MACHINE_KEYS} | {"_template": template, "_commit": commit}
    return {
        "template": template,
        "commit": commit,
        "checkout": answers["_checkout"],
        "context": {"cookiecutter": context},
        "directory": git(repo_dir, "rev-parse", "--show-prefix").rstrip("/") or None,
        "skip": [],
    }


def record_origin(project: Path, answers: dict) -> None:
    """Write .cruft.json, for a plain cookiecutter bake: cruft's own renders (create,
    update, diff) set `_commit`, and create and update write the file themselves."""
    if "_commit" in answers:
        return
    state = cruft_state(answers)
    if isinstance(state, str):
        print(state)
        return
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": "))
    (project / ".cruft.json").write_text(text + "\n", encoding="utf-8")


def main() -> None:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    project = Path.cwd()
    remove_unwanted(project, answers)
    remove_empty_dirs(project)
    record_origin(project, answers)


if __name__ == "__main__":
    main()
