"""Bake every supported option set and check the project it writes."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_TEMPLATE, ROOT, TEMPLATE, bake, choices

# Every file a default bake writes; {pkg} is the Python package.
DEFAULT_FILES = {
    ".cruft.json",  # where the bake came from, for `cruft update`
    ".dockerignore",
    ".github/workflows/ci.yml",
    ".github/workflows/deploy.yml",
    ".gitignore",
    ".python-version",
    ".telemetry",
    "Dockerfile",
    "README.md",
    "conf/base/airflow.yml",
    "conf/base/catalog.yml",
    "conf/base/deploy.yml",
    "conf/base/globals.yml",
    "conf/base/mlflow.yml",
    "conf/base/parameters_data_science.yml",
    "conf/gcp/deploy.yml",
    "conf/gcp/globals.yml",
    "conf/gcp/mlflow.yml",
    "conf/local/.gitkeep",
    "conf/local/credentials.yml.example",
    "data/01_raw/companies.csv",
    "data/01_raw/reviews.csv",
    "data/01_raw/shuttles.xlsx",
    *(
        f"data/{folder}/.gitkeep"
        for folder in (
            "02_intermediate",
            "03_primary",
            "04_feature",
            "05_model_input",
            "06_models",
            "07_model_output",
            "08_reporting",
        )
    ),
    # The GCP project as code (tests/test_infra.py checks it).
    *(
        f"infra/{name}"
        for name in (
            "composer.tf",
            "deployer.tf",
            "gke.tf",
            "main.tf",
            "mlflow.tf",
            "outputs.tf",
            "registry.tf",
            "storage.tf",
            "terraform.tfvars",
            "variables.tf",
            "versions.tf",
        )
    ),
    "noxfile.py",
    "pyproject.toml",
    "uv.lock",
    # The data scientist's package: Kedro's starter, plus the deployment's hooks.
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/pipeline_registry.py",
    "src/{pkg}/settings.py",
    "src/{pkg}/pipelines/__init__.py",
    *(
        f"src/{{pkg}}/pipelines/{pipeline}/{module}.py"
        for pipeline in ("data_processing", "data_science")
        for module in ("__init__", "nodes", "pipeline")
    ),
    # The deployment layer, a package of its own.
    *(
        f"src/{{pkg}}_deploy/{module}"
        for module in (
            "__init__.py",
            "__main__.py",
            "airflow/pyproject.toml",
            "airflow/uv.lock",
            "airflow_dag.j2",
            "config.py",
            "dags.py",
            "hooks.py",
            "infra.py",
            "local.py",
            "mlflow_hooks.py",
            "mlflow_runs.py",
            "plan.py",
            "ship.py",
        )
    ),
    "tests/__init__.py",
    "tests/pipelines/__init__.py",
    "tests/pipelines/test_data_processing.py",
    "tests/pipelines/test_data_science.py",
    "tests/test_run.py",
}
# What each switch, answered "no", leaves out.
WITHOUT = {
    "mlflow_tracking": {
        "conf/base/mlflow.yml",
        "conf/gcp/mlflow.yml",
        "src/{pkg}_deploy/mlflow_hooks.py",
        "src/{pkg}_deploy/mlflow_runs.py",
    },
    "github_actions": {".github/workflows/ci.yml", ".github/workflows/deploy.yml"},
    "infrastructure": {path for path in DEFAULT_FILES if path.startswith("infra/")},
}
AWKWARD = {
    "project_name": 'Rocket\'s "Quote" \\ Co',
    "author_name": 'Zoë O\'Brien-Łukasiewicz "Z" \\',
    "author_email": "zoe@example.com",
}
# Answers YAML would read as something else unquoted: a boolean, a null, a number, a
# mapping; and emoji, which JSON escapes as surrogates that no YAML reader takes back.
YAML_SENSITIVE = {
    "yes": {"project_name": "Yes"},
    "null": {"project_name": "Null", "author_name": "~"},
    "numbers-and-colons": {
        "project_name": "1e3",
        "python_package": "rockets",
        "composer_environment": "rockets-composer",
        "gke_cluster": "rockets-gke",
        "author_name": "Ops: on call #2",
        "mlflow_tracking_uri": "https://mlflow.example.com/a: b #c",
    },
    "emoji": {"project_name": "Moon 🚀 Cargo", "author_name": "Zoë 🚀 Team"},
}
# The supported option sets: every choice of cookiecutter.json, plus awkward answers.
SUPPORTED = {
    "defaults": {},
    **{f"python-{version}": {"python_version": version} for version in choices("python_version")[1:]},
    **{f"without-{switch}": {switch: "no"} for switch in WITHOUT},
    "all-switches-off": dict.fromkeys(WITHOUT, "no"),
    "gke-operator": {"pod_operator": "gke", "k8s_namespace": "rockets", "gke_cluster": "rockets-gke"},
    "awkward-answers": AWKWARD,
    **{f"yaml-{name}": answers for name, answers in YAML_SENSITIVE.items()},
    "other-names": {
        "project_name": "Moon Cargo",
        "python_package": "cargo_pipelines",
        "gcp_project_id": "acme-ml-prod-42",
        "gcp_region": "us-central1",
        "data_bucket": "acme.cargo.data",
    },
}
UNRENDERED = re.compile(r"{{\s*cookiecutter\.|{%-?\s*(if|for|raw)\b[^%]*cookiecutter")


def expected_files(answers: dict[str, str], package: str) -> set[str]:
    files = set(DEFAULT_FILES)
    for switch, paths in WITHOUT.items():
        if answers.get(switch) == "no":
            files -= paths
    return {path.format(pkg=package) for path in files}


def baked_files(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}


@pytest.fixture(scope="module", params=list(SUPPORTED), ids=list(SUPPORTED))
def baked(request, tmp_path_factory) -> tuple[dict[str, str], Path]:
    answers = SUPPORTED[request.param]
    return answers, bake(tmp_path_factory.mktemp(request.param), **answers)


def pyproject(project: Path) -> dict:
    return tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))


def test_writes_exactly_the_expected_files(baked):
    answers, project = baked
    package = pyproject(project)["tool"]["kedro"]["package_name"]
    assert baked_files(project) == expected_files(answers, package)


def test_leaves_no_cookiecutter_variable_unrendered(baked):
    _, project = baked
    for path in project.rglob("*"):
        if path.is_file() and path.suffix not in {".xlsx"}:
            text = path.read_text(encoding="utf-8")
            assert not UNRENDERED.search(text), f"unrendered cookiecutter variable in {path.relative_to(project)}"


def test_pyproject_says_who_and_what(baked):
    answers, project = baked
    meta = pyproject(project)
    slug = project.name
    assert meta["project"]["name"] == slug
    assert meta["project"]["authors"][0]["name"] == answers.get("author_name", TEMPLATE["author_name"])
    assert meta["project"]["authors"][0].get("email", "") == answers.get("author_email", "")
    assert meta["tool"]["kedro"]["project_name"] == answers.get("project_name", TEMPLATE["project_name"])
    package = meta["tool"]["kedro"]["package_name"]
    assert package == answers.get("python_package", slug.replace("-", "_"))
    assert meta["project"]["scripts"][slug] == f"{package}.__main__:main"
    assert (project / "src" / package / "__main__.py").exists()


def test_lock_names_the_project(baked):
    _, project = baked
    lock = tomllib.loads((project / "uv.lock").read_text())
    names = {package["name"] for package in lock["package"]}
    assert project.name in names
    assert {"kedro", "kedro-datasets", "kedro-mlflow", "scikit-learn", "gcsfs"} <= names
    assert not names & {"apache-airflow", "jupyterlab", "kedro-viz"}, "Airflow and notebooks stay out of the image"


def test_python_version_is_the_chosen_one(baked):
    answers, project = baked
    assert (project / ".python-version").read_text().strip() == answers.get("python_version", "3.11")


def test_every_yaml_file_parses(baked):
    _, project = baked
    for path in [*project.rglob("*.yml"), project / ".telemetry"]:
        assert yaml.safe_load(path.read_text()), path
    example = yaml.safe_load((project / "conf/local/credentials.yml.example").read_text())
    assert example is None, "the credentials example is all comments, so it sets nothing"


def test_gcp_environment_puts_every_persisted_dataset_on_the_bucket(baked):
    answers, project = baked
    catalog = yaml.safe_load((project / "conf/base/catalog.yml").read_text())
    # What the nodes write goes to the DAG run's own folder below data_root (test_plan, test_image).
    raw = {name for name, entry in catalog.items() if "/01_raw/" in entry["filepath"]}
    assert raw == {"companies", "reviews", "shuttles"}
    assert all(catalog[name]["filepath"].startswith("${globals:data_root}/01_raw/") for name in raw)
    written = [entry["filepath"] for name, entry in catalog.items() if name not in raw]
    assert written and all(path.startswith("${dag_run:${globals:data_root}}/") for path in written)
    base = yaml.safe_load((project / "conf/base/globals.yml").read_text())
    assert (set(base), base["data_root"]) == ({"data_root", "infra"}, "data")
    bucket = answers.get("data_bucket", f"{TEMPLATE['gcp_project_id']}-{project.name}")
    assert base["infra"]["data_root"] == f"gs://{bucket}/{project.name}"
    # The gcp environment's: the infra block's that `nox -s infra` writes there, else the bake's.
    gcp = yaml.safe_load((project / "conf/gcp/globals.yml").read_text())
    assert gcp == {"data_root": f'${{oc.select:infra.data_root,"gs://{bucket}/{project.name}"}}'}


def infra_block(project: Path) -> dict:
    """What the cloud environment is made of, as the bake writes it (conf/base/globals.yml)."""
    return yaml.safe_load((project / "conf/base/globals.yml").read_text(encoding="utf-8"))["infra"]


def resolved(value, infra: dict):
    """A setting that reads the infra block, `${globals:infra.<key>}`, with the block's value."""
    found = re.fullmatch(r"\$\{globals:infra\.(\w+)\}", value) if isinstance(value, str) else None
    return infra[found.group(1)] if found else value


def test_airflow_settings_carry_the_answers(baked):
    answers, project = baked
    defaults = {key: answers.get(key, TEMPLATE[key]) for key in ("author_name", "author_email", "k8s_service_account")}
    region = answers.get("gcp_region", TEMPLATE["gcp_region"])
    gcp_project = answers.get("gcp_project_id", TEMPLATE["gcp_project_id"])
    raw = yaml.safe_load((project / "conf/base/airflow.yml").read_text())["default"]
    infra = infra_block(project)
    settings = {key: resolved(value, infra) for key, value in raw.items()}
    assert {key for key, value in raw.items() if value != settings[key]} == {
        *("operator", "gcp_project_id", "region", "cluster", "namespace", "service_account", "image"),
        "mlflow_iap_audience",
    } & set(raw), "the cloud environment's settings come from the infra block"
    assert settings["owner"] == defaults["author_name"]
    assert settings["email"] == ([defaults["author_email"]] if defaults["author_email"] else [])
    assert (settings["gcp_project_id"], settings["region"]) == (gcp_project, region)
    if answers.get("pod_operator", "kubernetes") == "gke":
        assert settings["operator"] == "gke"
        assert settings["cluster"] == answers.get("gke_cluster", f"{project.name}-gke")
        assert settings["namespace"] == answers.get("k8s_namespace", project.name)
        assert settings["service_account"] == defaults["k8s_service_account"]
    else:  # Composer 3's own cluster, as it runs the pods
        assert settings["operator"] == "kubernetes"
        assert (settings["cluster"], settings["namespace"], settings["service_account"]) == (
            None,
            "composer-user-workloads",
            None,
        )
    assert settings["image"] == f"{region}-docker.pkg.dev/{gcp_project}/kedro/{project.name}"
    assert settings["default_machine"] in settings["machines"]


def test_every_answer_reads_back_from_yaml_as_given(baked):
    answers, project = baked
    answer = {key: answers.get(key, TEMPLATE[key]) for key in ("author_name", "mlflow_tracking_uri")}
    conf = project / "conf"
    settings = yaml.safe_load((conf / "base/airflow.yml").read_text(encoding="utf-8"))["default"]
    assert settings["owner"] == answer["author_name"]
    infra = infra_block(project)
    if answers.get("pod_operator") == "gke":
        expected = (answers.get("k8s_namespace", project.name), answers.get("gke_cluster", f"{project.name}-gke"))
        assert (infra["namespace"], infra["cluster"]) == expected
    composer = resolved(yaml.safe_load((conf / "base/deploy.yml").read_text())["composer_environment"], infra)
    assert composer == answers.get("composer_environment", f"{project.name}-composer")
    if (conf / "base/mlflow.yml").exists():
        assert yaml.safe_load((conf / "base/mlflow.yml").read_text())["tracking"]["experiment"]["name"] == project.name
        server = yaml.safe_load((conf / "gcp/mlflow.yml").read_text())["server"]["mlflow_tracking_uri"]
        server = resolved(server, infra)
        namespace = answers.get("k8s_namespace", project.name)
        expected = answer["mlflow_tracking_uri"].replace("{{ cookiecutter.k8s_namespace }}", namespace)
        assert server == expected


def test_parameters_are_the_starters(baked):
    _, project = baked
    parameters = yaml.safe_load((project / "conf/base/parameters_data_science.yml").read_text())
    assert parameters["model_options"]["test_size"] == 0.2
    assert parameters["model_options"]["random_state"] == 3
    assert len(parameters["model_options"]["features"]) == 8


def test_optional_parts_carry_their_answers(baked):
    answers, project = baked
    settings = yaml.safe_load((project / "conf/base/airflow.yml").read_text())["default"]
    settings_py = next(project.glob("src/*/settings.py")).read_text()
    if answers.get("mlflow_tracking", "yes") == "yes":
        assert settings["mlflow_tasks_on"] == "worker"
        mlflow = yaml.safe_load((project / "conf/base/mlflow.yml").read_text())
        # The experiment is named once, where kedro-mlflow reads it; so is the cloud's server.
        assert mlflow["tracking"]["experiment"]["name"] == project.name
        assert {key for key in settings if key.startswith("mlflow")} == {"mlflow_tasks_on", "mlflow_iap_audience"}
        assert "hooks.project_hooks(mlflow=True)" in settings_py
        assert "MLflow" in (project / "README.md").read_text()
    else:
        assert not any(key.startswith("mlflow") for key in settings), "no MLflow tasks in the DAG"
        assert "hooks.project_hooks(mlflow=False)" in settings_py
        assert "hooks.disabled_plugins(mlflow=False)" in settings_py
        assert "mlflow:" not in (project / "conf/base/catalog.yml").read_text()
        assert "| MLflow |" not in (project / "README.md").read_text()
    if answers.get("github_actions", "yes") == "yes":
        # Copied as they are, GitHub's expressions included (tests/test_workflows.py checks them).
        workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
        assert workflow["concurrency"]["group"] == "ci-${{ github.ref }}"
        assert [step.get("run") for step in workflow["jobs"]["check"]["steps"]][2] == "uvx nox -s lint tests"


def test_cruft_file_names_the_template_and_its_commit(baked):
    answers, project = baked
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    git = ["git", "-C", str(ROOT), "rev-parse"]
    toplevel = subprocess.run([*git, "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip()
    assert state["template"] == toplevel
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"])
    assert (state["checkout"], state["directory"], state["skip"]) == (None, None, [])
    context = state["context"]["cookiecutter"]
    assert (context["_template"], context["_commit"]) == (state["template"], state["commit"])
    assert not {"_output_dir", "_repo_dir", "_checkout"} & set(context), "nothing of this machine's bake"
    assert {key: context[key] for key in answers} == answers
    assert context["project_slug"] == project.name


def test_python_files_compile(baked):
    _, project = baked
    for path in project.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_sample_data_is_copied_byte_for_byte(baked):
    _, project = baked
    for path in (PROJECT_TEMPLATE / "data/01_raw").iterdir():
        assert (project / "data/01_raw" / path.name).read_bytes() == path.read_bytes()


def test_an_injection_payload_is_kept_as_data(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"""x'''\"\"\"); __import__("os").system("touch {marker}") #"""
    project = bake(tmp_path / "out", project_name=payload, project_slug="injected", author_name=payload)

    assert not marker.exists()
    meta = pyproject(project)
    assert meta["tool"]["kedro"]["project_name"] == payload
    assert meta["project"]["authors"][0]["name"] == payload


def test_git_tracks_the_project_but_not_local_config_data_or_environments(tmp_path):
    project = bake(tmp_path)
    for leftover in ("conf/local/credentials.yml", "data/02_intermediate/x.parquet", ".venv/bin/python", "mlruns/0/x"):
        (project / leftover).parent.mkdir(parents=True, exist_ok=True)
        (project / leftover).write_text("local")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    tracked = subprocess.run([*git, "ls-files"], cwd=project, check=True, capture_output=True, text=True).stdout

    assert set(tracked.split()) == expected_files({}, project.name)
