"""Sessions of the template: `nox -s demo` bakes and runs a project, `nox -s tests` checks it all."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
TEMPLATE = json.loads((ROOT / "cookiecutter.json").read_text())
PYTHON = TEMPLATE["python_version"][0]
PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
AIRFLOW_LOCK = "src/{{cookiecutter.python_package}}_deploy/airflow/uv.lock"
TAKEN_MODULES = ROOT / "hooks/taken_modules.txt"
DEMO_DIR = ROOT / "build" / "demo"
BENCH_DIR = ROOT / "build" / "bench"
# The naive image the baked Dockerfile is measured against: one stage, `pip install .`
# of the whole project (with the proxy's CA, when the build is given one).
PLAIN_DOCKERFILE = """\
FROM python:{python}-slim-bookworm
WORKDIR /app
COPY . .
RUN --mount=type=secret,id=ca-bundle \\
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \\
    pip install --no-cache-dir .
CMD ["python", "-m", "kedro", "run"]
"""
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
    """Bake the default project into build/demo and deploy it on this machine: one whole
    DAG run in a local Airflow, tracked by a local MLflow (`-- --keep-running` leaves both up)."""
    install_locked(session, "test")
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    session.log(f"Baking the default project into {DEMO_DIR}")
    project = bake(session, DEMO_DIR)
    with session.chdir(project):
        session.log("Deploying it locally: nox -s deploy -- --target local")
        session.run(
            *(sys.executable, "-m", "nox", "-s", "deploy", "--", "--target", "local", *session.posargs),
            env=OWN_ENVIRONMENT,
            external=True,
        )
    session.log(f"The project is in {project}: `cd` there, see its README, and try `nox -s deploy -- --keep-running`.")


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Re-lock the baked project and its Airflow environment (`-- --upgrade` to take new releases)."""
    install_locked(session, "test")
    project = bake(session, Path(session.create_tmp()) / "lock")
    airflow = Path("src") / f"{project.name.replace('-', '_')}_deploy" / "airflow"
    with session.chdir(project):
        session.run("uv", "lock", *session.posargs, env=OWN_ENVIRONMENT)
    with session.chdir(project / airflow):
        session.run("uv", "lock", *session.posargs, env=OWN_ENVIRONMENT)
    shutil.copyfile(project / airflow / "uv.lock", PROJECT_TEMPLATE / AIRFLOW_LOCK)
    slug = project.name
    lock_text = (project / "uv.lock").read_text()
    marker = f'\nname = "{slug}"\n'
    if lock_text.count(marker) != 1:
        session.error(f"Expected the baked project {slug!r} once in its uv.lock")
    (PROJECT_TEMPLATE / "uv.lock").write_text(lock_text.replace(marker, '\nname = "{{ cookiecutter.project_slug }}"\n'))
    session.log(f"Wrote {PROJECT_TEMPLATE / 'uv.lock'}")
    # The modules the lock installs, every group's, which no package may be named.
    venv = (Path(session.create_tmp()) / "lock-venv").resolve()
    with session.chdir(project):
        session.run(
            "uv", "sync", "--locked", "--all-groups", env=OWN_ENVIRONMENT | {"UV_PROJECT_ENVIRONMENT": str(venv)}
        )
    script = [str(ROOT / "scripts/taken_modules.py"), slug, str(PROJECT_TEMPLATE / "uv.lock"), str(TAKEN_MODULES)]
    session.run(str(venv / "bin/python"), *script, external=True)
    session.log(f"Wrote {TAKEN_MODULES}")


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


@nox.session(python=PYTHON, default=False)
def bench_mlflow(session: nox.Session) -> None:
    """Time the MLflow start task on Airflow vs in a pod, and a local DAG run grouped vs not (build/bench-mlflow.json)."""
    install_locked(session, "test")
    work = ROOT / "build" / "bench-mlflow"
    shutil.rmtree(work, ignore_errors=True)
    project = bake(session, work / "bake")
    # Compiled up front, as in an image: the first timed run must not compile Airflow or Kedro.
    with session.chdir(project):
        session.run("uv", "sync", "--locked", "--compile-bytecode", env=OWN_ENVIRONMENT)
    airflow = work / "airflow-venv"
    session.log("Installing Airflow from the bake's deploy/airflow lock, as `nox -s deploy -- --target local` does")
    session.run(
        *("uv", "sync", "--locked", "--compile-bytecode", "--project", str(project / "deploy/airflow")),
        env=OWN_ENVIRONMENT | {"UV_PROJECT_ENVIRONMENT": str(airflow)},
    )
    script = ROOT / "scripts/bench_mlflow.py"
    session.run(
        "python", str(script), str(project), str(airflow), str(ROOT / "build/bench-mlflow.json"), *session.posargs
    )


def docker_answers(*args: str) -> bool:
    """Whether ``docker <args>`` succeeds."""
    return subprocess.run(["docker", *args], capture_output=True, check=False).returncode == 0


def docker_build(project: Path, tag: str, *args: str) -> float:
    """Build ``project`` with BuildKit; return the seconds it took."""
    # The CA certificates this machine trusts, for builds behind a TLS-intercepting proxy.
    bundle = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    secret = ["--secret", f"id=ca-bundle,src={bundle}"] if Path(bundle).exists() else []
    command = ["docker", "build", "--quiet", "--tag", tag, *secret, *args, str(project)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=os.environ | {"DOCKER_BUILDKIT": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def change_code(project: Path, mark: int) -> None:
    """A code-only change: one more comment line in one source file."""
    nodes = next(project.glob("src/*/pipelines/data_processing/nodes.py"))
    nodes.write_text(f"{nodes.read_text()}# change {mark}\n")


@nox.session(python=PYTHON, default=False)
def bench_image(session: nox.Session) -> None:
    """Measure the baked image against a plain `pip install` one: size, and rebuild ÷ full build time."""
    install_locked(session, "test")
    if shutil.which("docker") is None or not docker_answers("info"):
        session.error("No Docker engine answers `docker info`: start Docker (CI: .ci/run starts one)")
    base = f"python:{PYTHON}-slim-bookworm"
    if not docker_answers("image", "inspect", base):
        session.error(f"No {base} image: `docker pull {base}`, or scripts/stand_in_base_image.sh {PYTHON} offline")
    ours = bake(session, Path(session.create_tmp()) / "bench_image")
    plain = ours.with_name("plain")
    shutil.rmtree(plain, ignore_errors=True)
    shutil.copytree(ours, plain, ignore=shutil.ignore_patterns(".dockerignore", "Dockerfile"))
    (plain / "Dockerfile").write_text(PLAIN_DOCKERFILE.format(python=PYTHON))

    results = {}
    for name, project in (("baked Dockerfile", ours), ("plain pip install", plain)):
        tag = f"bench-image/{name.split()[0]}"
        session.log(f"{name}: a full build (--no-cache; downloads may come from cache mounts)")
        full = docker_build(project, tag, "--no-cache")
        size = int(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
            ).stdout
        )
        rebuilds = []
        for mark in range(3):
            change_code(project, mark)
            rebuilds.append(docker_build(project, tag))
        rebuild = statistics.median(rebuilds)
        session.log(
            f"{name}: {size / 1e6:.0f} MB, full build {full:.1f} s, rebuild after a code change {rebuild:.1f} s"
        )
        results[name] = {
            "size_bytes": size,
            "full_build_s": round(full, 2),
            "rebuild_s": round(rebuild, 2),
            "rebuild_runs_s": [round(r, 2) for r in rebuilds],
        }

    baked, naive = results["baked Dockerfile"], results["plain pip install"]
    ratios = {
        "size_vs_plain": round(baked["size_bytes"] / naive["size_bytes"], 3),
        "rebuild_vs_full": round(baked["rebuild_s"] / baked["full_build_s"], 3),
    }
    targets = {"size_vs_plain": 0.6, "rebuild_vs_full": 0.2}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    report = {"python": PYTHON, "base_image": base, "images": results, "ratios": ratios, "targets": targets}
    (BENCH_DIR / "image.json").write_text(json.dumps(report, indent=2) + "\n")

    rows = [f"{'image':<18} {'size MB':>8} {'full s':>7} {'rebuild s':>10}"]
    rows += [
        f"{name:<18} {r['size_bytes'] / 1e6:>8.0f} {r['full_build_s']:>7.1f} {r['rebuild_s']:>10.1f}"
        for name, r in results.items()
    ]
    rows += [
        f"{name:<18} {value:>8.3f}  target <= {targets[name]} {'met' if value <= targets[name] else 'NOT met'}"
        for name, value in ratios.items()
    ]
    session.log("\n" + "\n".join(rows) + f"\nWritten to {BENCH_DIR / 'image.json'}")
