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
import tomllib
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
IMAGES = ("baked Dockerfile", "plain pip install")
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


def bench_bake(session: nox.Session, folder: Path, *uv_args: str) -> Path:
    """Bake the default project into ``folder`` and install it (`uv sync --locked`)."""
    project = bake(session, folder)
    with session.chdir(project):
        session.run("uv", "sync", "--locked", *uv_args, env=OWN_ENVIRONMENT)
    return project


def airflow_environment(session: nox.Session, project: Path, venv: Path, *uv_args: str) -> Path:
    """Airflow from the bake's lock (src/<package>_deploy/airflow), as its local deployment installs it."""
    lock = project / "src" / f"{project.name.replace('-', '_')}_deploy" / "airflow"
    session.log(f"Installing Airflow from {lock.relative_to(project)}/uv.lock into {venv}")
    session.run(
        *("uv", "sync", "--locked", *uv_args, "--project", str(lock)),
        env=OWN_ENVIRONMENT | {"UV_PROJECT_ENVIRONMENT": str(venv)},
    )
    return venv


def bytecode(session: nox.Session) -> tuple[str, ...]:
    """uv's option to compile the environments up front, as in an image, so that no timed run
    compiles Kedro or Airflow; a smoke run, whose figures mean nothing, skips the minutes it takes."""
    return () if "--smoke" in session.posargs else ("--compile-bytecode",)


def locked_version(project: Path, name: str) -> str:
    """The version of ``name`` in the bake's uv.lock."""
    lock = tomllib.loads((project / "uv.lock").read_text())
    (version,) = {package["version"] for package in lock["package"] if package["name"] == name}
    return version


@nox.session(python=PYTHON, default=False)
def bench_dags(session: nox.Session) -> None:
    """Time DAG generation and parsing against kedro-airflow out of the box (build/bench/dags.json; `-- --smoke`)."""
    install_locked(session, "test")
    work = BENCH_DIR / "dags"
    shutil.rmtree(work, ignore_errors=True)
    compiled = bytecode(session)
    ours = bench_bake(session, work / "ours", *compiled)
    bench_bake(session, work / "plain", *compiled)
    airflow = airflow_environment(session, ours, work / "airflow-venv", *compiled)
    kedro = f"kedro=={locked_version(ours, 'kedro')}"
    session.log(f"Adding {kedro} to Airflow's environment: kedro-airflow's own DAG imports it")
    session.run("uv", "pip", "install", *compiled, "--python", str(airflow / "bin/python"), kedro)
    script = [str(ROOT / "scripts/bench_dags.py"), str(work), str(BENCH_DIR / "dags.json")]
    session.run("python", *script, str(airflow / "bin/python"), *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench_mlflow(session: nox.Session) -> None:
    """Time the MLflow start task on the worker vs in a pod, and a local DAG run grouped vs not
    (build/bench/mlflow.json; `-- --smoke`)."""
    install_locked(session, "test")
    work = BENCH_DIR / "mlflow"
    shutil.rmtree(work, ignore_errors=True)
    compiled = bytecode(session)
    project = bench_bake(session, work / "bake", *compiled)
    airflow = airflow_environment(session, project, work / "airflow-venv", *compiled)
    script = [str(ROOT / "scripts/bench_mlflow.py"), str(project), str(airflow), str(BENCH_DIR / "mlflow.json")]
    session.run("python", *script, *session.posargs)


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
    """Measure the baked image against a plain `pip install` one: size, and rebuild ÷ full build time
    (build/bench/image.json; `-- --smoke`)."""
    smoke = "--smoke" in session.posargs
    if unknown := [arg for arg in session.posargs if arg != "--smoke"]:
        session.error(f"Unknown arguments {unknown}: bench_image takes only --smoke")
    install_locked(session, "test")
    if shutil.which("docker") is None or not docker_answers("info"):
        session.error("No Docker engine answers `docker info`: start Docker (CI: .ci/run starts one)")
    base = f"python:{PYTHON}-slim-bookworm"
    if not docker_answers("image", "inspect", base):
        session.error(f"No {base} image: `docker pull {base}`, or scripts/stand_in_base_image.sh {PYTHON} offline")
    work = BENCH_DIR / "image"
    shutil.rmtree(work, ignore_errors=True)
    ours = bake(session, work / "ours")
    plain = work / "plain" / ours.name
    shutil.copytree(ours, plain, ignore=shutil.ignore_patterns(".dockerignore", "Dockerfile"))
    (plain / "Dockerfile").write_text(PLAIN_DOCKERFILE.format(python=PYTHON))
    # A smoke run builds each image once with the layer cache, and rebuilds only the baked
    # one: the plain one's rebuild is its whole `pip install` again, and no ratio needs it.
    full_build = [] if smoke else ["--no-cache"]
    rebuild_count = {"baked Dockerfile": 1, "plain pip install": 0} if smoke else dict.fromkeys(IMAGES, 3)

    results = {}
    for name, project in zip(IMAGES, (ours, plain), strict=True):
        tag = f"bench-image/{name.split()[0]}"
        session.log(
            f"{name}: a full build ({' '.join(full_build) or 'smoke: layer cache on'}; downloads may come from cache mounts)"
        )
        full = docker_build(project, tag, *full_build)
        size = int(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
            ).stdout
        )
        rebuilds = []
        for mark in range(rebuild_count[name]):
            change_code(project, mark)
            rebuilds.append(docker_build(project, tag))
        rebuild = statistics.median(rebuilds) if rebuilds else None
        rebuilt = f", rebuild after a code change {rebuild:.1f} s" if rebuilds else ""
        session.log(f"{name}: {size / 1e6:.0f} MB, full build {full:.1f} s{rebuilt}")
        results[name] = {
            "size_bytes": size,
            "full_build_s": round(full, 2),
            "rebuild_s": round(rebuild, 2) if rebuilds else None,
            "rebuild_runs_s": [round(r, 2) for r in rebuilds],
        }

    baked, naive = results["baked Dockerfile"], results["plain pip install"]
    ratios = {
        "size_vs_plain": round(baked["size_bytes"] / naive["size_bytes"], 3),
        "rebuild_vs_full": round(baked["rebuild_s"] / baked["full_build_s"], 3),
    }
    targets = {"size_vs_plain": 0.6, "rebuild_vs_full": 0.2}
    rows = ["Image size, full build and rebuild after a code change, median of the rebuilds"]
    rows += ["(smoke run: layer cache on, one rebuild of the baked image: the figures mean nothing)"] if smoke else []
    rows += [f"{'image':<18} {'size MB':>8} {'full s':>7} {'rebuild s':>10}"]
    rows += [
        f"{name:<18} {r['size_bytes'] / 1e6:>8.0f} {r['full_build_s']:>7.1f} "
        + (f"{r['rebuild_s']:>10.1f}" if r["rebuild_s"] is not None else f"{'-':>10}")
        for name, r in results.items()
    ]
    rows += [
        f"{name:<18} {value:>8.3f}  target <= {targets[name]} {'met' if value <= targets[name] else 'NOT met'}"
        for name, value in ratios.items()
    ]
    report = {
        "smoke": smoke,
        "no_cache": not smoke,
        "python": PYTHON,
        "base_image": base,
        "images": results,
        "ratios": ratios,
        "targets": targets,
        "table": rows,
    }
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "image.json").write_text(json.dumps(report, indent=2) + "\n")
    session.log("\n" + "\n".join(rows) + f"\nWritten to {BENCH_DIR / 'image.json'}")
