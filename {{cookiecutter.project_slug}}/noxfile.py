"""Development sessions of {{ cookiecutter.python_package }}: `nox -l` lists them."""

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

PYTHON = Path(__file__).with_name(".python-version").read_text().strip()


def install_locked(session: nox.Session, *args: str) -> None:
    """Install the locked dependencies (see uv.lock) into the session's environment."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
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
