"""Install a baked project and run it: its pipelines, its own lint and tests (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_TEMPLATE, REFERENCE_DATA, ROOT, bake, choices, clean_env, require, run, uv

pytestmark = pytest.mark.slow

RAW_FILES = ("companies.csv", "reviews.csv", "shuttles.xlsx")
MLFLOW_TYPE_HINTS_WARNING = "mlflow/pyfunc/utils/data_validation.py:187: UserWarning:"


def install(project: Path) -> Path:
    """Install the locked dependencies into the project's .venv; return its bin folder."""
    run(uv(), "sync", "--locked", cwd=project)
    return project / ".venv" / "bin"


def kedro_run(bin_dir: Path, project: Path, *args: str) -> dict[str, float]:
    """`kedro run` in ``project``; return the metrics the run wrote."""
    run(bin_dir / "kedro", "run", *args, cwd=project)
    return json.loads((project / "data/08_reporting/metrics.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def bin_dir(project) -> Path:
    return install(project)


def test_kedro_run_succeeds_on_the_sample_data_offline(project, bin_dir):
    # No proxy and no index: the run must not need the network.
    env = clean_env(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", UV_OFFLINE="1")
    result = subprocess.run(
        [bin_dir / "kedro", "run"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pipeline execution completed successfully" in result.stdout + result.stderr

    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert set(metrics) == {"r2_score", "mae", "max_error"}
    assert (project / "mlflow.db").exists(), "the run is tracked in the project's own MLflow store"
    assert metrics["r2_score"] > 0.3, "the sample data must be rich enough for the model to learn"
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line]
    # Known and harmless: mlflow warns, when kedro-mlflow's CLI loads (before any project
    # code runs), that kedro-mlflow's model class has no type hints.
    assert all(MLFLOW_TYPE_HINTS_WARNING in line for line in warnings), warnings


def test_each_pipeline_runs_on_its_own(project, bin_dir):
    run(bin_dir / "kedro", "run", "--pipelines", "data_processing", cwd=project)
    metrics = kedro_run(bin_dir, project, "--pipelines", "data_science")
    assert metrics["r2_score"] > 0.3


def test_pipelines_run_unchanged_on_the_real_spaceflights_data(project, bin_dir, tmp_path):
    present = all((REFERENCE_DATA / name).exists() for name in RAW_FILES)
    if not present:
        pytest.skip(f"the real Spaceflights files are not in {REFERENCE_DATA} (set SPACEFLIGHTS_REFERENCE_DATA)")
    copy = tmp_path / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv", "data"))
    (copy / "data/01_raw").mkdir(parents=True)
    for name in RAW_FILES:
        shutil.copy(REFERENCE_DATA / name, copy / "data/01_raw" / name)

    metrics = kedro_run(bin_dir, copy)
    assert metrics["r2_score"] > 0.1


def test_gcp_environment_resolves_every_dataset_to_the_bucket(project, bin_dir):
    # In a session, after the registry and the Airflow hook have read their settings,
    # as in a pod: Kedro's `${globals:}` resolver is process-wide.
    script = (
        "import json; from pathlib import Path;"
        "from kedro.framework.startup import bootstrap_project; bootstrap_project(Path.cwd());"
        "from kedro.framework.project import pipelines; from kedro.framework.session import KedroSession;"
        "session = KedroSession.create(env='gcp'); context = session.load_context(); pipelines['__default__'];"
        "print(json.dumps({n: e['filepath'] for n, e in context.config_loader['catalog'].items()}))"
    )
    # MLflow off: the gcp environment's server is the cluster's, out of reach here.
    output = run(bin_dir / "python", "-c", script, cwd=project, env=clean_env(KEDRO_MLFLOW="off"))
    paths = json.loads(output.strip().splitlines()[-1])
    assert {"companies", "shuttles", "reviews", "model_input_table", "regressor", "metrics"} <= set(paths)
    bucket = f"gs://my-gcp-project-{project.name}/{project.name}/"
    assert all(path.startswith(bucket) for path in paths.values()), paths


def test_the_hook_refuses_exactly_the_modules_the_lock_installs(project, bin_dir, tmp_path):
    # The bake's .venv holds every group of its lock (dev includes them all).
    run(
        bin_dir / "python",
        ROOT / "scripts/taken_modules.py",
        project.name,
        PROJECT_TEMPLATE / "uv.lock",
        tmp_path / "taken.txt",
        cwd=project,
    )
    derived = (tmp_path / "taken.txt").read_text()
    assert derived == (ROOT / "hooks/taken_modules.txt").read_text(), "run `nox -s lock`"
    assert {"google", "yaml", "mlflow", "kedro_mlflow", "requests"} <= {
        line.split()[0] for line in derived.splitlines()
    }


def test_pip_resolves_the_project_too(project, tmp_path):
    # Plain pip, as in a user's own virtual environment: the standard metadata is enough.
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    report = tmp_path / "report.json"
    run(tmp_path / "venv/bin/pip", "install", "--quiet", "--dry-run", "--report", report, project, cwd=tmp_path)
    resolved = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {project.name, "kedro", "kedro-datasets", "scikit-learn", "gcsfs", "openpyxl", "pyarrow"} <= resolved


def test_the_projects_own_lint_and_tests_pass(project):
    # The baked noxfile builds its own environments from the lock, as a user's would.
    output = run(sys.executable, "-m", "nox", "--non-interactive", "-s", "lint", "tests", cwd=project)
    assert "Session lint was successful" in output
    assert "Session tests was successful" in output


@pytest.mark.parametrize("version", choices("python_version")[1:])
def test_other_python_versions_install_and_run(tmp_path, version):
    found = subprocess.run([uv(), "python", "find", version], capture_output=True, text=True, check=False)
    require(found.returncode == 0, f"no Python {version} interpreter on this machine")
    project = bake(tmp_path, python_version=version)
    bin_dir = install(project)

    assert run(bin_dir / "python", "--version", cwd=project).startswith(f"Python {version}.")
    assert kedro_run(bin_dir, project)["r2_score"] > 0.3


def test_answers_yaml_would_misread_make_a_project_that_runs(tmp_path):
    """`Yes` becomes the slug `yes`: the namespace, cluster and MLflow experiment, which
    YAML read as true when written unquoted, and kedro-mlflow refused."""
    project = bake(tmp_path, project_name="Yes", author_name="Zoë 🚀 Team")
    assert kedro_run(install(project), project)["r2_score"] > 0.3
    assert (project / "mlflow.db").exists(), "tracked, in the experiment `yes`"


def test_without_mlflow_tracking_a_run_tracks_nothing(tmp_path):
    project = bake(tmp_path, mlflow_tracking="no")
    metrics = kedro_run(install(project), project)
    assert metrics["r2_score"] > 0.3
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()
