"""Answers the pre-generation hook must refuse, each with its message, leaving nothing behind."""

from __future__ import annotations

import importlib.util
import re
import sys
from unittest.mock import patch

import pytest
from conftest import ROOT, TEMPLATE, bake, choices
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
        "ERROR: 'kedro' is not a valid python_package because it shadows a package the project depends on.",
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


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_answers() -> dict[str, str]:
    """The default answers, rendered as cookiecutter renders them."""
    with patch.object(sys, "path", [str(ROOT), *sys.path]):  # where local_extensions lives
        return prompt_for_config(generate_context(context_file=str(ROOT / "cookiecutter.json")), no_input=True)


def test_unsupported_python_version_is_refused_by_the_hook():
    hook = load_hook("pre_gen_project")
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
def test_valid_buckets_pass(bucket):
    assert load_hook("pre_gen_project").bucket_problem(bucket) is None


def test_the_hooks_read_answers_as_json_data():
    for name in ("pre_gen_project", "post_gen_project"):
        source = (ROOT / "hooks" / f"{name}.py").read_text()
        rendered = set(re.findall(r"{{[^}]*}}", source))
        assert rendered <= {"{{ cookiecutter | tojson }}", "{{ _cookiecutter | tojson }}"}, name
        assert 'json.loads(r"""{{ cookiecutter | tojson }}""")' in source


def test_post_gen_hook_removes_only_switched_off_parts(tmp_path):
    hook = load_hook("post_gen_project")
    answers = {"mlflow_tracking": "no", "github_actions": "yes", "python_package": "rocket"}
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
        "conf/base/parameters_mlflow_start.yml",
        "src/rocket/mlflow_hooks.py",
        "src/rocket/mlflow_runs.py",
        "src/rocket/pipelines/mlflow_start",
    ]
    assert (tmp_path / ".github").is_dir()
    assert (tmp_path / "keep.txt").exists()
    assert not (tmp_path / "conf").exists() and not (tmp_path / "src").exists(), "empty folders are tidied away"
    assert set(hook.OPTIONAL_PARTS) == {key for key, value in TEMPLATE.items() if value == ["yes", "no"]}
