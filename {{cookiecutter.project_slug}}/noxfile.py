"""Development sessions of {{ cookiecutter.python_package }}: `nox -l` lists them.

`lint` and `tests` run in environments of their own; the deployment's sessions run
the deployment layer's commands (src/{{ cookiecutter.python_package }}_deploy) in the project's .venv, which
`uv run` keeps in step with uv.lock. Each takes `--env <Kedro environment>`: the
settings of conf/<env>/ win over conf/base's.
"""

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

PYTHON = Path(__file__).with_name(".python-version").read_text().strip()
DEPLOYMENT = "{{ cookiecutter.python_package }}_deploy"
# nox's own environment is not the project's.
OWN_ENVIRONMENT = {"VIRTUAL_ENV": None, "UV_PROJECT_ENVIRONMENT": None}


def install_locked(session: nox.Session, *args: str) -> None:
    """Install the locked dependencies (see uv.lock) into the session's environment."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def deployment(session: nox.Session, command: str) -> None:
    """Run `python -m <package>_deploy <command> <the session's arguments>`."""
    session.run(
        *("uv", "run", "--locked", "python", "-m", DEPLOYMENT, command),
        *session.posargs,
        env=OWN_ENVIRONMENT,
        external=True,
    )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests."""
    install_locked(session, "--group=test", "--no-default-groups")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check the code with ruff."""
    install_locked(session, "--only-group=lint")
    args = session.posargs or ["."]
    session.run("ruff", "check", *args)
    session.run("ruff", "format", "--check", *args)


@nox.session(venv_backend="none")
def generate(session: nox.Session) -> None:
    """Write the pipelines' Airflow DAGs into dags/<env>/ (`-- --help` for the options)."""
    deployment(session, "generate")


@nox.session(venv_backend="none")
def build(session: nox.Session) -> None:
    """Build the image, tagged <image>:<git revision> (`-- <docker build options>`)."""
    deployment(session, "build")


@nox.session(venv_backend="none")
def push(session: nox.Session) -> None:
    """Push the image and record it by digest, <image>@sha256:..., in build/<env>/image."""
    deployment(session, "push")


@nox.session(venv_backend="none")
def upload(session: nox.Session) -> None:
    """Upload dags/<env>/ to the Composer DAG folder (`-- --dry-run` to preview)."""
    deployment(session, "upload")


{% if cookiecutter.infrastructure == "yes" -%}
@nox.session(venv_backend="none")
def infra(session: nox.Session) -> None:
    """Bring the GCP project to what the DAGs need: `-- plan|apply|settings|validate --env <env>`.

    Terraform (or OpenTofu) in infra/, then its outputs into conf/<env>/globals.yml.
    """
    deployment(session, "infra")


{% endif -%}
@nox.session(venv_backend="none")
def deploy(session: nox.Session) -> None:
    """Deploy to the target in deploy.yml, or `-- --target local|composer --env <env>`.

    local: run the whole DAG once in an Airflow and an MLflow on this machine
    (`-- --keep-running` leaves both up to look at). composer: build, push, generate
    and upload this revision to the environment's Cloud Composer.
    """
    deployment(session, "deploy")
