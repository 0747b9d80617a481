"""Sessions of the template: `nox -s demo` bakes and runs a project, `nox -s tests` checks it all."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
TEMPLATE = json.loads((ROOT / "cookiecutter.json").read_text())
PYTHON = TEMPLATE["python_version"][0]
PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
DEMO_DIR = ROOT / "build" / "demo"
# nox points these at its session's environment; a baked project uses its own.
OWN_ENVIRONMENT = {"VIRTUAL_ENV": None, "UV_PROJECT_ENVIRONMENT": None, "UV_PYTHON": None}


def install_locked(session: nox.Session, *groups: str) -> None:
    """Install the template's locked tooling (uv.lock) into the session's environment."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        *(f"--group={group}" for group in groups),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def bake(session: nox.Session, output_dir: Path, *answers: str) -> Path:
    """Bake the template with the default answers (overridden by ``key=value``)."""
    session.run("cookiecutter", "--no-input", "--default-config", "-f", "-o", str(output_dir), str(ROOT), *answers)
    (project,) = output_dir.iterdir()
    return project


def ruff(session: nox.Session, path: Path) -> None:
    """Lint and format-check ``path`` with the configuration it carries."""
    session.run("ruff", "check", str(path))
    session.run("ruff", "format", "--check", str(path))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check the template and a baked project with ruff."""
    install_locked(session, "test", "lint")
    ruff(session, ROOT)
    # Outside .nox and build/, which ruff skips without a word.
    with tempfile.TemporaryDirectory() as output_dir:
        ruff(session, bake(session, Path(output_dir)))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Lint, then bake every option set and run the baked projects (`-- -m 'not slow'` for the fast part)."""
    install_locked(session, "test", "lint")
    ruff(session, ROOT)
    session.run("pytest", "-n", "2", "--dist", "loadfile", "--durations", "5", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Bake the default project into build/demo, install it and run its pipelines."""
    install_locked(session, "test")
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    session.log(f"Baking the default project into {DEMO_DIR}")
    project = bake(session, DEMO_DIR, *session.posargs)
    with session.chdir(project):
        session.log("Installing its locked dependencies into its own environment, .venv")
        session.run("uv", "sync", "--locked", env=OWN_ENVIRONMENT)
        session.log("Running both pipelines on the sample data")
        session.run("uv", "run", "--locked", "kedro", "run", env=OWN_ENVIRONMENT)
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    summary = "\n".join(f"  {name:<10} {value:>10.3f}" for name, value in metrics.items())
    session.log(
        f"Done. The model's test metrics:\n{summary}\n"
        f"The project is in {project}: `cd` there and try `uv run kedro run --pipelines data_science`."
    )


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Re-lock the baked project and its Airflow environment (`-- --upgrade` to take new releases)."""
    install_locked(session, "test")
    project = bake(session, Path(session.create_tmp()) / "lock")
    with session.chdir(project):
        session.run("uv", "lock", *session.posargs, env=OWN_ENVIRONMENT)
    with session.chdir(project / "deploy/airflow"):
        session.run("uv", "lock", *session.posargs, env=OWN_ENVIRONMENT)
    shutil.copyfile(project / "deploy/airflow/uv.lock", PROJECT_TEMPLATE / "deploy/airflow/uv.lock")
    slug = project.name
    lock_text = (project / "uv.lock").read_text()
    marker = f'\nname = "{slug}"\n'
    if lock_text.count(marker) != 1:
        session.error(f"Expected the baked project {slug!r} once in its uv.lock")
    (PROJECT_TEMPLATE / "uv.lock").write_text(lock_text.replace(marker, '\nname = "{{ cookiecutter.project_slug }}"\n'))
    session.log(f"Wrote {PROJECT_TEMPLATE / 'uv.lock'}")


@nox.session(python=PYTHON, default=False)
def bench_dags(session: nox.Session) -> None:
    """Time DAG generation and parsing against kedro-airflow's own template (build/bench-dags.json)."""
    install_locked(session, "test")
    work = ROOT / "build" / "bench"
    shutil.rmtree(work, ignore_errors=True)
    for name in ("ours", "plain"):
        project = bake(session, work / name)
        with session.chdir(project):
            session.run("uv", "sync", "--locked", env=OWN_ENVIRONMENT)
    airflow = work / "airflow-venv"
    session.log("Installing Airflow from the bake's deploy/airflow lock, and Kedro beside it for kedro-airflow's DAG")
    session.run(
        *("uv", "sync", "--locked", "--project", str(project / "deploy/airflow")),
        env=OWN_ENVIRONMENT | {"UV_PROJECT_ENVIRONMENT": str(airflow)},
    )
    session.run("uv", "pip", "install", "--python", str(airflow / "bin/python"), "kedro==1.7.0")
    session.run(
        "python",
        str(ROOT / "scripts/bench_dags.py"),
        str(work),
        str(ROOT / "build/bench-dags.json"),
        str(airflow / "bin/python"),
    )
