"""A baked project takes the template's later changes with cruft.

A plain `cookiecutter` bake writes .cruft.json (the post-generation hook), so that
`cruft check`, `cruft diff` and `cruft update` work on it as on a `cruft create`.
The story of a user: bake from a template repository at commit A, commit the
project, change a pipeline; the template moves on to commit B; `cruft update`
brings B's change and keeps the user's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, run
from test_hooks import default_answers, load_hook

# Hermetic git: no user or system configuration (signing, hooks, templates) applies.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
# What the template's working tree holds that is not the template.
NOT_TEMPLATE = {".git", "build", ".nox", ".pytest_cache", ".ruff_cache"}
NODES = "src/spaceflights/pipelines/data_processing/nodes.py"
USER_CHANGE = '\n\ndef count_rows(data):\n    """The user\'s own node function."""\n    return len(data)\n'
# Commit B of the template: a line at the end of the baked README, a comment on top of
# the nodes the user also changed (further down), and one in a file the post-generation
# hook removes from a bake without MLflow.
TEMPLATE_CHANGE = {
    "{{cookiecutter.project_slug}}/README.md": ("end", "A line the template added in commit B."),
    "{{cookiecutter.project_slug}}/src/{{cookiecutter.python_package}}/pipelines/data_processing/nodes.py": (
        "top",
        "# A comment the template added in commit B.",
    ),
    "{{cookiecutter.project_slug}}/src/{{cookiecutter.python_package}}_deploy/mlflow_runs.py": (
        "end",
        "# A comment the template added in commit B.",
    ),
}


def git(repo: Path, *args: str) -> str:
    return run("git", *args, cwd=repo, env=clean_env(**GIT_ENV)).strip()


def commit_all(repo: Path, message: str) -> str:
    """Commit everything in ``repo`` (made a repository if need be); return the commit."""
    if not (repo / ".git").exists():
        git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def copy_template(target: Path) -> Path:
    """The template's working tree, as it is now, without its repository and what it builds."""

    def ignored(folder: str, names: list[str]) -> set[str]:
        at_root = Path(folder) == ROOT
        return {n for n in names if n == "__pycache__" or (at_root and (n in NOT_TEMPLATE or n.startswith(".venv")))}

    shutil.copytree(ROOT, target, ignore=ignored)
    return target


def cruft(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run cruft as a user would, in ``project``; the caller reads the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "cruft", *args],
        cwd=project,
        env=clean_env(**GIT_ENV),
        capture_output=True,
        text=True,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def bake_as_a_user(template: Path, work: Path, answers: dict[str, str]) -> Path:
    """`cookiecutter <relative path>` from another folder, as a user types it."""
    work.mkdir()
    relative = os.path.relpath(template, work)
    options = [f"{key}={value}" for key, value in answers.items()]
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--default-config", "-o", "projects", relative]
    run(*command, *options, cwd=work)
    (project,) = (work / "projects").iterdir()
    return project


def change_template(template: Path) -> None:
    for path, (where, line) in TEMPLATE_CHANGE.items():
        file = template / path
        text = file.read_text(encoding="utf-8")
        file.write_text(f"{line}\n{text}" if where == "top" else f"{text}{line}\n", encoding="utf-8")


def diff_lines(diff: str, sign: str) -> list[str]:
    """The lines ``cruft diff`` shows with ``sign`` (- the project's, + the template's)."""
    return [line[1:] for line in diff.splitlines() if line.startswith(sign) and not line.startswith(sign * 3)]


@pytest.mark.slow
@pytest.mark.parametrize("answers", [{}, {"mlflow_tracking": "no"}], ids=["defaults", "without-mlflow"])
def test_a_bake_takes_a_template_update_and_keeps_the_users_change(tmp_path, answers):
    template = copy_template(tmp_path / "template")
    commit_a = commit_all(template, "A")
    project = bake_as_a_user(template, tmp_path / "work", answers)
    state = json.loads((project / ".cruft.json").read_text())
    assert (state["template"], state["commit"]) == (str(template), commit_a)
    commit_all(project, "Baked from the template")
    # The bake is exactly what cruft renders from .cruft.json: nothing to show.
    assert ok(cruft(project, "diff", "--exit-code")) == ""
    assert "up to date" in ok(cruft(project, "check"))

    nodes = project / NODES
    nodes.write_text(nodes.read_text() + USER_CHANGE)
    commit_all(project, "The user's change")
    change_template(template)
    commit_b = commit_all(template, "B")

    outdated = cruft(project, "check")
    assert outdated.returncode == 1, outdated.stdout + outdated.stderr
    assert "out of date" in outdated.stdout
    ok(cruft(project, "update", "--skip-apply-ask"))

    assert not list(project.rglob("*.rej")), "the update applied with rejects"
    assert not re.search(r"^(<<<<<<<|>>>>>>>) ", nodes.read_text(), re.MULTILINE), "the update left a conflict"
    readme = (project / "README.md").read_text()
    assert readme.endswith("A line the template added in commit B.\n")
    assert nodes.read_text().startswith("# A comment the template added in commit B.\n")
    assert nodes.read_text().endswith(USER_CHANGE), "the user's change is kept"
    changed = {".cruft.json", "README.md", NODES}
    mlflow_runs = project / "src/spaceflights_deploy/mlflow_runs.py"
    if answers.get("mlflow_tracking") == "no":
        assert not mlflow_runs.exists(), "cruft's renders ran the hook that leaves MLflow out"
    else:
        assert mlflow_runs.read_text().endswith("# A comment the template added in commit B.\n")
        changed.add("src/spaceflights_deploy/mlflow_runs.py")
    assert set(git(project, "diff", "HEAD", "--name-only").splitlines()) == changed
    assert git(project, "ls-files", "--others", "--exclude-standard") == "", "the update left files of its own"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit_b
    assert state["context"]["cookiecutter"]["_commit"] == commit_b
    assert "up to date" in ok(cruft(project, "check"))
    # What still differs from the template at B is the user's change, and only it.
    remaining = cruft(project, "diff", "--exit-code")
    assert remaining.returncode == 1, remaining.stderr
    assert re.findall(r"^diff --git upstream-template-old/(\S+) ", remaining.stdout, re.MULTILINE) == [NODES]
    assert diff_lines(remaining.stdout, "+") == []
    assert diff_lines(remaining.stdout, "-") == USER_CHANGE.splitlines()


def test_a_template_that_is_no_git_checkout_bakes_without_cruft_file(tmp_path):
    template = copy_template(tmp_path / "template")
    work = tmp_path / "work"
    work.mkdir()
    output = run(sys.executable, "-m", "cookiecutter", "--no-input", "--default-config", str(template), cwd=work)
    assert (work / "spaceflights/README.md").exists()
    assert not (work / "spaceflights/.cruft.json").exists()
    assert [line for line in output.splitlines() if "cruft" in line] == [
        f"No .cruft.json: cruft needs a git template, and {template} is not a git checkout."
    ]


@pytest.mark.parametrize(
    ("given", "directory", "expected"),
    [
        ("gh:acme/rockets", None, "https://github.com/acme/rockets.git"),
        ("gl:acme/rockets", "templates/kedro", "https://gitlab.com/acme/rockets.git"),
        ("git+https://example.com/acme/rockets.git", None, "https://example.com/acme/rockets.git"),
        ("git@example.com:acme/rockets.git", None, "git@example.com:acme/rockets.git"),
    ],
)
def test_a_cloned_template_is_named_by_the_url_cruft_clones(tmp_path, given, directory, expected):
    clone = tmp_path / "clone"  # as cookiecutter clones it into ~/.cookiecutters
    (clone / (directory or "")).mkdir(parents=True)
    (clone / (directory or "") / "cookiecutter.json").write_text("{}")
    commit = commit_all(clone, "A")
    hook = load_hook("post_gen_project", tmp_path / "hook")
    answers = default_answers() | {
        "_template": given,
        "_repo_dir": str(clone / (directory or "")),
        "_output_dir": str(tmp_path),
        "_checkout": "v1",
    }

    state = hook.cruft_state(answers)

    assert {k: state[k] for k in ("template", "commit", "checkout", "directory", "skip")} == {
        "template": expected,
        "commit": commit,
        "checkout": "v1",
        "directory": directory,
        "skip": [],
    }
    assert state["context"]["cookiecutter"] == {
        key: value for key, value in answers.items() if key not in {"_output_dir", "_repo_dir", "_checkout"}
    } | {"_template": expected, "_commit": commit}


def test_cruft_renders_get_no_cruft_file_from_the_hook(tmp_path):
    hook = load_hook("post_gen_project", tmp_path / "hook")
    # cruft's create, update and diff render with `_commit` set, and write the file themselves.
    hook.record_origin(tmp_path, default_answers() | {"_template": str(ROOT), "_commit": "0" * 40})
    assert not (tmp_path / ".cruft.json").exists()
