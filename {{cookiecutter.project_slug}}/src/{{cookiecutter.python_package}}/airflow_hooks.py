"""Where Kedro meets the task plan: the tagging check and the DAG's configuration.

The pipeline registry calls ``check_tagging`` so that every ``kedro run`` refuses a
tagging that cannot make a DAG. ``AirflowHooks`` gives ``kedro airflow create``
each pipeline's checked task plan (see ``airflow_plan``) as the ``plan`` variable of
the DAG template, after checking the settings and that every dataset crossing from
one task to another is persisted: all of it before any DAG file is opened.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from kedro.config import AbstractConfigLoader
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines, settings
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.pipeline import Pipeline
from kedro.utils import find_kedro_project

from .airflow_plan import NodeSpec, Plan, PlanError, check_settings, make_plan

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)
PACKAGE = __name__.rpartition(".")[0]
MEMORY_DATASETS = {"MemoryDataset", "SharedMemoryDataset"}
RUNTIME_PATTERNS = {"{default}": {"type": "MemoryDataset"}}


def _cli_errors(function: F) -> F:
    """Show a ``PlanError`` as its message alone: Kedro's CLI prints no traceback."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except PlanError as error:
            raise click.ClickException(str(error)) from error

    return wrapper  # type: ignore[return-value]


def node_specs(pipeline: Pipeline) -> list[NodeSpec]:
    """The plan's view of ``pipeline``'s nodes, in Kedro's order."""
    return [
        NodeSpec(
            node.name, frozenset(node.tags), tuple(node.inputs), tuple(node.outputs)
        )
        for node in pipeline.nodes
    ]


def config_loader(env: str | None) -> AbstractConfigLoader:
    """The project's configuration for ``env``, loaded as a Kedro session would.

    Beware: each loader points the process-wide ``${globals:}`` resolver at its own
    globals, so whoever makes one inside a session must make the session's again.
    """
    project = find_kedro_project(Path.cwd()) or Path.cwd()
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )


@_cli_errors
def check_tagging(registered: Mapping[str, Pipeline]) -> None:
    """Raise ``PlanError`` if a pipeline's tags cannot make a DAG.

    The registry does not know the run's ``--env``: this reads conf/base and the
    environment in ``KEDRO_ENV``, if any. ``kedro airflow create`` checks again with
    its own environment, and the datasets too.
    """
    project = find_kedro_project(Path.cwd()) or Path.cwd()
    env = os.environ.get("KEDRO_ENV") or _base_env()
    config = AirflowConfig(project / settings.CONF_SOURCE, env, registered)
    for name in registered if config.raw else ():
        config.plan(name)


class AirflowConfig(Mapping[str, Any]):
    """``airflow.yml`` as kedro-airflow reads it: ``default``, then one section per
    pipeline, which gets ``plan``, the pipeline's checked task plan.

    The files are read as plain YAML, base then ``env``, each section merged key by
    key. Given ``catalog`` (an environment's catalog configuration), the plans are
    checked to persist every dataset that crosses from one task to another.
    """

    @_cli_errors
    def __init__(
        self,
        conf: Path,
        env: str,
        registered: Mapping[str, Pipeline],
        catalog: Callable[[str], dict[str, Any]] | None = None,
    ):
        self.conf, self.env = conf, env
        self.registered, self.catalog = registered, catalog
        self.plans: dict[str, Plan] = {}
        self.raw: dict[str, Any] = {}
        self.files: dict[tuple[str, str | None], str] = {}
        for folder in dict.fromkeys((_base_env(), env)):
            paths = (
                (conf / folder).glob("airflow*.y*ml"),
                (conf / folder).glob("airflow/**/*.y*ml"),
            )
            for path in sorted(p for found in paths for p in found):
                for section, keys in (yaml.safe_load(path.read_text()) or {}).items():
                    self.raw[section] = _merged(self.raw.get(section) or {}, keys or {})
                    self.files[section, None] = str(path)
                    self.files.update({(section, key): str(path) for key in keys or {}})
        if unknown := set(self.raw) - {"default", *registered}:
            section = sorted(unknown)[0]
            raise PlanError(
                f"{self.files[section, None]}: `{section}` is not `default` nor a "
                f"registered pipeline ({', '.join(registered)})."
            )

    @_cli_errors
    def __getitem__(self, section: str) -> dict[str, Any]:
        if section == "default":
            return dict(self.raw.get("default", {}))
        if section not in self.registered:
            raise KeyError(section)
        return self.settings(section) | {"plan": self.plan(section)}

    def __iter__(self) -> Iterator[str]:
        return iter(["default", *self.registered])

    def __len__(self) -> int:
        return 1 + len(self.registered)

    def __contains__(self, section: object) -> bool:
        return section == "default" or section in self.registered

    def settings(self, section: str) -> dict[str, Any]:
        """The section's checked settings: ``default``, the section, ``--params``."""
        params = _cli_params()
        config = self.raw.get("default", {}) | self.raw.get(section, {}) | params
        files = {
            key: "--params"
            if key in params
            else self.files.get((section, key), self.files.get(("default", key)))
            for key in config
        }
        default_file = str(self.conf / _base_env() / "airflow.yml")
        checked = check_settings(config, files, default_file)
        # The local operator's tasks run here unless told otherwise.
        project = find_kedro_project(Path.cwd()) or Path.cwd()
        return checked | {"project_dir": checked["project_dir"] or str(project)}

    @_cli_errors
    def plan(self, section: str) -> Plan:
        """The pipeline's task plan; raises ``PlanError``."""
        if section in self.plans:
            return self.plans[section]
        settings_ = self.settings(section)
        nodes = node_specs(self.registered[section])
        plan = make_plan(PACKAGE, section, self.env, nodes, settings_)
        if self.catalog:
            self.check_datasets(plan, self.catalog(plan.env))
        for warning in plan.warnings:
            logger.warning(warning)
        self.plans[section] = plan
        return plan

    @staticmethod
    def check_datasets(plan: Plan, catalog: dict[str, Any]) -> None:
        """Raise unless every dataset crossing between tasks is persisted in the
        environment the tasks run with (its ``catalog``): pods share nothing else."""
        resolver = CatalogConfigResolver(
            _without_credentials(catalog), None, RUNTIME_PATTERNS
        )
        lost = [
            f"Pipeline `{plan.pipeline}`: dataset `{dataset}` goes from task "
            f"`{upstream}` to task `{downstream}` but is a MemoryDataset in environment "
            f"`{plan.env}`, so it would be lost between the pods. Declare it in "
            f"conf/{plan.env}/catalog.yml or conf/base/catalog.yml, or put both nodes "
            "in one group."
            for dataset, upstream, downstream in plan.crossings
            if str(resolver.resolve_pattern(dataset).get("type")).rpartition(".")[2]
            in MEMORY_DATASETS
        ]
        if lost:
            raise PlanError("\n".join(lost))


class AirflowHooks:
    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        """Give kedro-airflow checked settings and plans instead of raw airflow.yml."""
        loader = context.config_loader
        env = context.env or loader.default_run_env

        def catalog(tasks_env: str) -> dict[str, Any]:
            if tasks_env == env:
                return loader["catalog"]
            other = config_loader(tasks_env)["catalog"]
            config_loader(env)  # the session's `${globals:}` again
            return other

        config = AirflowConfig(Path(loader.conf_source), env, pipelines, catalog)
        if config.raw:
            loader["airflow"] = config


def _cli_params() -> dict[str, Any]:
    """``kedro airflow create --params``, which kedro-airflow applies after the
    sections: the plan must see them too. (``kedro run --params`` are not ours.)"""
    context = click.get_current_context(silent=True)
    if context is None or context.command_path.split()[-2:] != ["airflow", "create"]:
        return {}
    return {key: _yaml_value(value) for key, value in context.params["params"].items()}


def _yaml_value(value: Any) -> Any:
    """``--params`` values are strings: read ``false`` or ``[a, b]`` as YAML would."""
    try:
        return yaml.safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError:
        return value


def _base_env() -> str:
    return settings.CONFIG_LOADER_ARGS.get("base_env", "base")


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key."""
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if nested else value
    return merged


def _without_credentials(catalog: dict[str, Any]) -> dict[str, Any]:
    """The catalog's entries, minus the credentials this check has no need of."""
    return {
        name: {k: v for k, v in entry.items() if k != "credentials"}
        for name, entry in catalog.items()
        if isinstance(entry, dict) and not name.startswith("_")
    }
