"""The deployment's settings, read the way Kedro reads configuration: one reader.

``conf/<env>/airflow*.yml`` (the DAGs), ``deploy*.yml`` (shipping them) and
``mlflow*.yml`` (kedro-mlflow's own file: where runs are logged) are read by the
project's config loader, conf/base first and then the environment's, merged key by
key. A key set in ``conf/<env>/`` wins for that environment in ``kedro airflow
create``, ``kedro run`` and every deployment command alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.config import AbstractConfigLoader, MissingConfigException

from .plan import NONE, PlanError, Setting, check_types

PATTERNS = {
    "airflow": ["airflow*", "airflow/**"],  # kedro-airflow's own patterns
    "deploy": ["deploy*", "deploy/**"],
    "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],  # kedro-mlflow's own patterns
}
KEY_BY_KEY = ("airflow", "deploy")  # the "soft" merge: nested keys, not whole sections
DEPLOY_SETTINGS = {
    "target": Setting(str, "local", ("local", "composer")),
    "local_mlflow_port": Setting(int, 5000),
    "local_airflow_port": Setting(int, 8080),
    "composer_environment": Setting((str, NONE), None),
    "dags_folder": Setting((str, NONE), None),
    "require_clean_tree": Setting(bool, False),
    "ca_bundle": Setting((str, NONE), None),
}
# The DAGs' own settings that shipping needs: where the image goes, which project.
SHARED = ("image", "gcp_project_id", "region")


def register(loader: AbstractConfigLoader) -> None:
    """Teach ``loader`` the deployment's settings and their merge rule."""
    loader.config_patterns.update(PATTERNS)
    loader.merge_strategy.update(dict.fromkeys(KEY_BY_KEY, "soft"))


def project_loader(project: Path, env: str | None) -> AbstractConfigLoader:
    """The project's config loader for ``env`` (None: Kedro's default), as a Kedro
    session makes it, outside any session.

    Beware: each loader points the process-wide ``${globals:}`` resolver at its own
    globals, so whoever makes one inside a session must make the session's again.
    """
    from kedro.framework.project import settings  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    bootstrap_project(project)
    conf = project / settings.CONF_SOURCE
    if env and not (conf / env).is_dir():
        known = sorted(p.name for p in conf.iterdir() if p.is_dir())
        raise PlanError(
            f"There is no Kedro environment `{env}`: {conf / env} does not exist. "
            f"Known: {', '.join(known)}. Create it, or pick one of those with --env."
        )
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf), env=env, **settings.CONFIG_LOADER_ARGS
    )
    register(loader)
    return loader


def read(loader: AbstractConfigLoader, kind: str) -> dict[str, Any]:
    """The merged settings of ``kind`` (airflow, deploy, mlflow); {} if no file has any."""
    try:
        return dict(loader[kind])
    except MissingConfigException:
        return {}


def origin(loader: AbstractConfigLoader, kind: str, *keys: str) -> str:
    """The file that sets ``keys`` (a path into the settings of ``kind``), the
    environment's before base's; where a missing key belongs (conf/base/<kind>.yml)
    if none does. Only for messages: the values come from ``read``."""
    conf = Path(loader.conf_source)
    for folder in dict.fromkeys(
        (loader.env or loader.default_run_env, loader.base_env)
    ):
        for path in _files(conf / folder, loader.config_patterns[kind]):
            node: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for key in keys:
                node = (
                    node.get(key, _MISSING) if isinstance(node, Mapping) else _MISSING
                )
            if node is not _MISSING:
                return _shown(path)
    return _shown(conf / loader.base_env / f"{kind}.yml")


_MISSING = object()


def _files(folder: Path, patterns: list[str]) -> list[Path]:
    found = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    return sorted(p for p in found if p.suffix in {".yml", ".yaml", ".json"})


def _shown(path: Path) -> str:
    """``path`` from the project folder, as a user finds it: conf/gcp/airflow.yml."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def deploy_settings(loader: AbstractConfigLoader) -> dict[str, Any]:
    """The checked settings of ``nox -s deploy build push upload``: deploy.yml's, and
    the image, GCP project and region of the DAGs (airflow.yml's ``default``)."""
    config = read(loader, "deploy")
    checked = check_types(
        config, DEPLOY_SETTINGS, lambda key: origin(loader, "deploy", key)
    )
    dags = read(loader, "airflow").get("default") or {}
    for key in SHARED:
        if not isinstance(dags.get(key), str) or not dags[key]:
            where = origin(loader, "airflow", "default", key)
            raise PlanError(
                f"{where}: `{key}` under `default` must be set (a string), "
                f"not {dags.get(key)!r}."
            )
        checked[key] = dags[key]
    return checked
