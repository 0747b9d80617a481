"""Development sessions of {{ cookiecutter.python_package }}: `nox -l` lists them."""

import argparse
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

PYTHON = Path(__file__).with_name(".python-version").read_text().strip()
PUSHED_IMAGE = Path("build/image")  # written by `nox -s push`: the image by digest
DAGS = Path("dags")
TARGETS = ("local", "composer")


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


def ship(session: nox.Session, *args: str) -> None:
    """Run tools/ship.py, which builds, pushes and uploads (see conf/base/deploy.yml)."""
    session.run("python", "tools/ship.py", *args)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the image, tagged <image>:<git revision> (`-- <docker build options>`)."""
    install_locked(session, "--only-group=deploy")
    ship(session, "build", *session.posargs)


@nox.session(python=PYTHON)
def push(session: nox.Session) -> None:
    """Push the image and record its digest, <image>@sha256:..., in build/image."""
    install_locked(session, "--only-group=deploy")
    ship(session, "push")


@nox.session(python=PYTHON)
def upload(session: nox.Session) -> None:
    """Upload dags/ to the Composer environment's DAG folder (`-- --dry-run` to preview)."""
    install_locked(session, "--only-group=deploy")
    ship(session, "upload", *session.posargs)


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    """Write the pipelines' Airflow DAGs into dags/ (`-- --help` for the options)."""
    parser = argparse.ArgumentParser(prog="nox -s generate --")
    parser.add_argument("--env", default="gcp", help="Kedro environment (gcp)")
    parser.add_argument(
        "--pipelines", default="__default__", help="comma-separated (__default__)"
    )
    parser.add_argument("--image", help=f"image to run (default: {PUSHED_IMAGE})")
    args = parser.parse_args(session.posargs)
    params = []
    if args.image or args.env != "local":
        if not (args.image or PUSHED_IMAGE.exists()):
            session.error(
                f"No image to run: {PUSHED_IMAGE} is missing. Run `nox -s push` "
                "first, or name one with `nox -s generate -- --image <image>`"
            )
        image = args.image or PUSHED_IMAGE.read_text().strip()
        params = ["--params", f"image={image}"]
    install_locked(session, "--group=dev", "--no-default-groups")
    session.run(
        *("python", "tools/dags.py", str(DAGS)),
        *(f"--env={args.env}", f"--pipelines={args.pipelines}", *params),
    )


@nox.session(python=PYTHON)
def deploy(session: nox.Session) -> None:
    """Deploy to the target in conf/base/deploy.yml, or `-- --target local|composer`.

    local: run the whole DAG once in an Airflow and an MLflow on this machine
    (`-- --keep-running` leaves both up to look at). composer: build, push, generate
    and upload this revision to Cloud Composer.
    """
    parser = argparse.ArgumentParser(prog="nox -s deploy --")
    parser.add_argument("--target", choices=TARGETS, help="default: deploy.yml's")
    args, rest = parser.parse_known_args(session.posargs)
    install_locked(session, "--only-group=deploy")
    target = (
        args.target
        or session.run("python", "tools/ship.py", "target", silent=True).strip()
    )
    if target == "local":
        session.run("python", "tools/local.py", *rest)
        return
    if rest:
        session.error(f"Unknown options for the composer target: {' '.join(rest)}")
    ship(session, "build")
    ship(session, "push")
    # `generate` runs in its own environment, as `nox -s generate` would run it.
    nox_generate = [sys.executable, "-m", "nox", "-s", "generate"]
    own_environment = {"VIRTUAL_ENV": None}
    session.run(*nox_generate, "--", "--env", "gcp", external=True, env=own_environment)
    ship(session, "upload")
    ship(session, "summary")
