"""Refuse answers that would bake a broken project, before anything is written.

Cookiecutter renders this file with Jinja. The answers arrive as JSON and are read as
data, never pasted into code, so no answer can change what this hook does; so do the
template's own data (local_extensions.TemplateData): the modules of the locked
dependencies, and the deployment layer's plan module, whose rules this hook applies.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import keyword
import re
import sys
from collections.abc import Callable

# Every top-level module the baked lock's distributions install, with them: a package
# of the same name would shadow it (hooks/taken_modules.txt, derived from uv.lock).
TAKEN = dict(line.split(" ", 1) for line in json.loads(r"""{{ taken_modules() | tojson }}"""))
PLAN_FILE = json.loads(r""" {{ plan_module() | tojson }} """)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
GCP_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def package_problem(name: str) -> str | None:
    if not name.isidentifier() or not name.isascii():
        return "it is not a Python identifier (ASCII letters, digits and underscores, not starting with a digit)"
    if keyword.iskeyword(name):
        return "it is a Python keyword"
    if name in sys.stdlib_module_names:
        return "it shadows the standard-library module of that name"
    for module in (name, f"{name}_deploy"):
        if module in TAKEN:
            return f"the module {module} would shadow the one of the dependencies {TAKEN[module]}"
    if name != name.lower():
        return "Python package names are lowercase (PEP 8)"
    return None


def slug_problem(slug: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", slug):
        return "it is not a valid distribution name (PEP 508: letters, digits, '.', '_', '-')"
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        return "it also names the Docker image, which takes lowercase letters, digits and single hyphens only"
    return None


def gcp_project_problem(project: str) -> str | None:
    if not 6 <= len(project) <= 30:
        return "Google Cloud project ids have 6 to 30 characters"
    if not re.fullmatch(r"[a-z][-a-z0-9]*[a-z0-9]", project):
        return "Google Cloud project ids are lowercase letters, digits and hyphens, start with a letter and do not end with a hyphen"
    return None


def region_problem(region: str) -> str | None:
    if re.fullmatch(r"[a-z]+-[a-z]+[0-9]+-[a-z]", region):
        return f"it is a zone; give its region, {region[:-2]}"
    if not re.fullmatch(r"[a-z]+-[a-z]+[0-9]+", region):
        return "it is not shaped like a Google Cloud region such as europe-west1 or us-central1"
    return None


def bucket_problem(bucket: str) -> str | None:
    parts = bucket.split(".")
    if not 3 <= len(bucket) <= (222 if len(parts) > 1 else 63) or any(not 1 <= len(p) <= 63 for p in parts):
        return "GCS bucket names have 3 to 63 characters (up to 222 in dot-separated parts of at most 63)"
    if not re.fullmatch(r"[a-z0-9][-a-z0-9_.]*[a-z0-9]", bucket):
        return "GCS bucket names are lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    if bucket.startswith("goog") or re.search(r"g[o0][o0]gle", bucket):
        return "GCS bucket names may not start with 'goog' or contain 'google'"
    try:
        ipaddress.ip_address(bucket)
    except ValueError:
        return None
    return "GCS bucket names may not be IP addresses"


def dns_label_problem(name: str) -> str | None:
    if len(name) > 63 or not DNS_LABEL.fullmatch(name):
        return "Kubernetes names are DNS-1123 labels: at most 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
    return None


def namespace_problem(name: str) -> str | None:
    if name.startswith("kube-"):
        return "namespaces starting with 'kube-' are reserved for Kubernetes itself"
    return dns_label_problem(name)


def gcp_name_problem(limit: int) -> Callable[[str], str | None]:
    def problem(name: str) -> str | None:
        if len(name) > limit or not GCP_NAME.fullmatch(name):
            return f"it must be at most {limit} lowercase letters, digits and hyphens, starting with a letter and ending with a letter or digit"
        return None

    return problem


def email_problem(email: str) -> str | None:
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        return "it is not an e-mail address (leave it empty to omit it)"
    return None


def tracking_uri_problem(uri: str) -> str | None:
    """The deployment layer's own rule (its plan module), as the DAGs apply it."""
    spec = importlib.util.spec_from_file_location("plan", PLAN_FILE)
    plan = importlib.util.module_from_spec(spec)
    sys.modules["plan"] = plan  # its dataclasses look their module up
    spec.loader.exec_module(plan)
    return plan.tracking_uri_problem(uri)


def text_problem(text: str) -> str | None:
    return None if text.strip() else "it is empty"


CHECKS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "project_name": ("a project name", text_problem),
    "project_slug": ("a valid project_slug", slug_problem),
    "python_package": ("a valid python_package", package_problem),
    "author_email": ("a valid author_email", email_problem),
    "gcp_project_id": ("a valid gcp_project_id", gcp_project_problem),
    "gcp_region": ("a valid gcp_region", region_problem),
    "composer_environment": ("a valid composer_environment", gcp_name_problem(64)),
    "gke_cluster": ("a valid gke_cluster", gcp_name_problem(40)),
    "artifact_registry_repository": ("a valid artifact_registry_repository", gcp_name_problem(63)),
    "k8s_namespace": ("a valid k8s_namespace", namespace_problem),
    "k8s_service_account": ("a valid k8s_service_account", dns_label_problem),
    "data_bucket": ("a valid data_bucket", bucket_problem),
    "mlflow_tracking_uri": ("a valid mlflow_tracking_uri", tracking_uri_problem),
}


def problems(answers: dict, choices: dict) -> list[str]:
    """Return one ``ERROR: ...`` line for each answer that cannot be baked."""
    errors = [
        f"ERROR: {answers[key]!r} is not {what} because {reason}."
        for key, (what, check) in CHECKS.items()
        if (reason := check(answers[key]))
    ]
    errors += [
        f"ERROR: {answers[key]!r} is not a supported {key} because the template offers only {', '.join(options)}."
        for key, options in choices.items()
        if answers[key] not in options
    ]
    return errors


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    # The template's own options; cruft's renders have none, and cookiecutter refuses
    # a choice it does not offer when it applies cruft's answers anyway.
    template = json.loads(r"""{{ _cookiecutter | default({}) | tojson }}""")
    choices = {key: value for key, value in template.items() if isinstance(value, list)}
    errors = problems(answers, choices)
    if errors:
        print(errors[0], file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
