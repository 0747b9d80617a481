"""Answers the pre-generation hook must refuse, each with its message, leaving nothing behind."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
from conftest import PROJECT_TEMPLATE, ROOT, TEMPLATE, bake, choices
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

# (answers, the line the hook prints), by readable id.
REFUSED = {
    "package-not-identifier": (
        {"python_package": "my-package"},
        "ERROR: 'my-package' is not a valid python_package because it is not a Python identifier",
    ),
    "package-keyword": (
        {"python_package": "class"},
        "ERROR: 'class' is not a valid python_package because it is a Python keyword.",
    ),
    "package-stdlib": (
        {"python_package": "json"},
        "ERROR: 'json' is not a valid python_package because it shadows the standard-library module of that name.",
    ),
    "package-dependency": (
        {"python_package": "kedro"},
        "ERROR: 'kedro' is not a valid python_package because the module kedro would shadow the one of the "
        "dependencies kedro.",
    ),
    # Any module the lock installs, not only the project's direct dependencies'.
    **{
        f"package-lock-{name}": ({"python_package": name}, f"because the module {name} would shadow the one of the")
        for name in ("mlflow", "kedro_mlflow", "requests", "google", "yaml", "click", "omegaconf", "sklearn")
    },
    "package-namespace-of-many": (
        {"python_package": "google"},
        "the module google would shadow the one of the dependencies google-api-core,google-auth,",
    ),
    "package-uppercase": ({"python_package": "Rockets"}, "because Python package names are lowercase (PEP 8)."),
    "slug-not-distribution": (
        {"project_slug": "my rockets"},
        "ERROR: 'my rockets' is not a valid project_slug because it is not a valid distribution name",
    ),
    "slug-not-image": ({"project_slug": "My_Rockets"}, "because it also names the Docker image"),
    "gcp-project-short": (
        {"gcp_project_id": "short"},
        "ERROR: 'short' is not a valid gcp_project_id because Google Cloud project ids have 6 to 30 characters.",
    ),
    "gcp-project-long": ({"gcp_project_id": "a" * 31}, "because Google Cloud project ids have 6 to 30 characters."),
    "gcp-project-digit-first": ({"gcp_project_id": "1rocket-lab"}, "start with a letter and do not end with a hyphen"),
    "gcp-project-hyphen-last": ({"gcp_project_id": "rocket-lab-"}, "start with a letter and do not end with a hyphen"),
    "gcp-project-uppercase": ({"gcp_project_id": "Rocket-Lab"}, "Google Cloud project ids are lowercase letters"),
    "region-zone": (
        {"gcp_region": "europe-west1-b"},
        "ERROR: 'europe-west1-b' is not a valid gcp_region because it is a zone; give its region, europe-west1.",
    ),
    "region-shape": (
        {"gcp_region": "Europe"},
        "because it is not shaped like a Google Cloud region such as europe-west1",
    ),
    "bucket-short": (
        {"data_bucket": "ab"},
        "ERROR: 'ab' is not a valid data_bucket because GCS bucket names have 3 to 63 characters",
    ),
    "bucket-long": ({"data_bucket": "b" * 64}, "because GCS bucket names have 3 to 63 characters"),
    "bucket-characters": ({"data_bucket": "Rocket_Data"}, "because GCS bucket names are lowercase letters, digits"),
    "bucket-ends-with-hyphen": ({"data_bucket": "rocket-data-"}, "starting and ending with a letter or digit"),
    "bucket-google": ({"data_bucket": "my-google-data"}, "may not start with 'goog' or contain 'google'"),
    "bucket-goog-prefix": ({"data_bucket": "goog-data"}, "may not start with 'goog' or contain 'google'"),
    "bucket-ip-address": ({"data_bucket": "192.168.5.4"}, "because GCS bucket names may not be IP addresses."),
    "namespace-not-dns-label": (
        {"k8s_namespace": "rocket_ns"},
        "ERROR: 'rocket_ns' is not a valid k8s_namespace because Kubernetes names are DNS-1123 labels",
    ),
    "namespace-too-long": ({"k8s_namespace": "n" * 64}, "Kubernetes names are DNS-1123 labels: at most 63"),
    "namespace-reserved": ({"k8s_namespace": "kube-rockets"}, "because namespaces starting with 'kube-' are reserved"),
    "service-account-not-dns-label": (
        {"k8s_service_account": "Kedro.Runner"},
        "ERROR: 'Kedro.Runner' is not a valid k8s_service_account because Kubernetes names are DNS-1123 labels",
    ),
    "composer-digit-first": (
        {"composer_environment": "1composer"},
        "is not a valid composer_environment because it must be at most 64",
    ),
    "cluster-too-long": ({"gke_cluster": "c" * 41}, "is not a valid gke_cluster because it must be at most 40"),
    "registry-uppercase": (
        {"artifact_registry_repository": "Kedro"},
        "'Kedro' is not a valid artifact_registry_repository",
    ),
    "tracking-uri-local": (
        {"mlflow_tracking_uri": "mlruns"},
        "ERROR: 'mlruns' is not a valid mlflow_tracking_uri because pods share no disk",
    ),
    "tracking-uri-file": ({"mlflow_tracking_uri": "file:///tmp/mlruns"}, "must be an http(s):// server address."),
    "tracking-uri-credentials": (
        {"mlflow_tracking_uri": "https://ml:s3cret@mlflow.example.com"},
        "because it carries credentials, which would be written into the DAG files and the README: give the bare "
        "address. The pods and Composer authenticate as their service accounts (see mlflow_iap_audience), or the "
        "tasks get MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from a secret.",
    ),
    "tracking-uri-token": ({"mlflow_tracking_uri": "https://t0ken@mlflow.example.com"}, "it carries credentials"),
    "email-malformed": (
        {"author_email": "zoe at example"},
        "ERROR: 'zoe at example' is not a valid author_email because it is not an e-mail address",
    ),
    "project-name-blank": (
        {"project_name": "   ", "project_slug": "rockets"},
        "ERROR: '   ' is not a project name because it is empty.",
    ),
}


@pytest.mark.parametrize(("answers", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_refuses_with_a_clear_line_and_leaves_nothing(tmp_path, capfd, answers, message):
    with pytest.raises(FailedHookException):
        bake(tmp_path, **answers)

    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert message in errors[0]
    assert list(tmp_path.iterdir()) == []


def load_hook(name: str, tmp_path: Path):
    """The hook as cookiecutter runs it, rendered with the default answers."""
    context = {"cookiecutter": default_answers(), "_cookiecutter": TEMPLATE}
    with patch.object(sys, "path", [str(ROOT), *sys.path]):  # where local_extensions lives
        environment = StrictEnvironment(context=context, keep_trailing_newline=True)
        source = environment.from_string((ROOT / "hooks" / f"{name}.py").read_text()).render(**context)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_answers() -> dict[str, str]:
    """The default answers, rendered as cookiecutter renders them."""
    with patch.object(sys, "path", [str(ROOT), *sys.path]):  # where local_extensions lives
        return prompt_for_config(generate_context(context_file=str(ROOT / "cookiecutter.json")), no_input=True)


def test_unsupported_python_version_is_refused_by_the_hook(tmp_path):
    hook = load_hook("pre_gen_project", tmp_path)
    supported = {key: value for key, value in TEMPLATE.items() if isinstance(value, list) and not key.startswith("_")}

    assert hook.problems(default_answers(), supported) == []
    assert hook.problems(default_answers() | {"python_version": "3.10"}, supported) == [
        f"ERROR: '3.10' is not a supported python_version because the template offers only {', '.join(choices('python_version'))}."
    ]


def test_cookiecutter_itself_refuses_a_python_version_it_does_not_offer(tmp_path):
    with pytest.raises(ValueError, match=r"3\.10"):
        bake(tmp_path, python_version="3.10")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bucket", ["abc", "my-project-data", "acme.cargo.data", "a_b-c.d", "x" * 63, ".".join(["y" * 63] * 3)]
)
def test_valid_buckets_pass(bucket, tmp_path):
    assert load_hook("pre_gen_project", tmp_path).bucket_problem(bucket) is None


def test_the_hooks_read_answers_as_json_data():
    # The answers, and the template's own data, only ever as JSON.
    data = {"{{ cookiecutter | tojson }}", "{{ _cookiecutter | default({}) | tojson }}"}
    data |= {"{{ taken_modules() | tojson }}", "{{ plan_module() | tojson }}", "{{ working_dir() | tojson }}"}
    for name in ("pre_gen_project", "post_gen_project"):
        source = (ROOT / "hooks" / f"{name}.py").read_text()
        rendered = set(re.findall(r"{{[^}]*}}", source))
        assert rendered <= data, name
        assert 'json.loads(r"""{{ cookiecutter | tojson }}""")' in source


def test_post_gen_hook_removes_only_switched_off_parts(tmp_path):
    hook = load_hook("post_gen_project", tmp_path / "hook")
    answers = {"mlflow_tracking": "no", "github_actions": "yes", "infrastructure": "yes", "python_package": "rocket"}
    for paths in hook.OPTIONAL_PARTS.values():
        for path in (tmp_path / path.format(**answers) for path in paths):
            file = path / "x.py" if not path.suffix else path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text("x")
    (tmp_path / "keep.txt").write_text("x")

    removed = hook.remove_unwanted(tmp_path, answers)
    hook.remove_empty_dirs(tmp_path)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "conf/base/mlflow.yml",
        "conf/gcp/mlflow.yml",
        "src/rocket_deploy/mlflow_hooks.py",
        "src/rocket_deploy/mlflow_runs.py",
    ]
    assert (tmp_path / ".github").is_dir() and (tmp_path / "infra").is_dir()
    assert (tmp_path / "keep.txt").exists()
    assert not (tmp_path / "conf").exists() and not (tmp_path / "src").exists(), "empty folders are tidied away"
    assert set(hook.OPTIONAL_PARTS) == {key for key, value in TEMPLATE.items() if value == ["yes", "no"]}


def test_the_taken_modules_are_those_of_the_lock_the_template_ships():
    """`nox -s lock` derives hooks/taken_modules.txt from uv.lock: a lock changed
    without it would let a package shadow a new dependency (test_baked_project checks
    the derivation itself against an installed bake)."""
    spec = importlib.util.spec_from_file_location("taken_modules", ROOT / "scripts/taken_modules.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    header = (ROOT / "hooks/taken_modules.txt").read_text().splitlines()[2]
    assert header.endswith(f"SHA-256 is {script.lock_digest(PROJECT_TEMPLATE / 'uv.lock')}."), "run `nox -s lock`"
