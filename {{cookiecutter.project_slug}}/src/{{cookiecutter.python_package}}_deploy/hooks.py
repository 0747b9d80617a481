"""Where Kedro meets the deployment: the hooks settings.py registers, and the tagging
check the pipeline registry runs.

- ``check_tagging`` makes every ``kedro run`` refuse a tagging that cannot make an
  Airflow DAG (see ``plan``).
- ``DagHooks`` gives ``kedro airflow create`` each pipeline's checked task plan,
  settings and parameters as the variables of the DAG template, after checking the
  settings, the MLflow server, and that every dataset crossing from one task to
  another is persisted in the DAG run's own folder: all of it before any DAG file
  is opened. In a task of a DAG run it puts the parameters the run was triggered
  with (``KEDRO_DAG_PARAMS``) over conf's, once checked.
- ``RESOLVERS``: ``${dag_run:<root>}``, the catalog's folder of a DAG run's data.
- ``DagRunCatalog``: the catalog, whose versioned datasets save one version per DAG
  run (its ``run_after``) in all the run's tasks.
- MLflow (``project_hooks``, ``disabled_plugins``): kedro-mlflow tracks every run,
  unless the process runs with ``KEDRO_MLFLOW=off``, which a DAG gives its tasks
  when its MLflow tasks are off (``mlflow_tasks_on: off``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import click
import yaml
from kedro.config import AbstractConfigLoader, MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.context.catalog_mixins import CatalogCommandsMixin
from kedro.framework.hooks import hook_impl
from kedro.framework.project import find_pipelines, pipelines
from kedro.io import DataCatalog
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.io.core import VERSION_FORMAT
from kedro.pipeline import Pipeline
from kedro.utils import find_kedro_project
from parse import parse

from . import config, dags
from .plan import (
    DAG_INPUTS_VARIABLE,
    DAG_PARAMS_VARIABLE,
    DAG_RUN_AFTER_VARIABLE,
    DAG_RUN_VARIABLES,
    DEPLOY_SUFFIX,
    MLFLOW_START,
    NodeSpec,
    Plan,
    PlanError,
    check_dag_params,
    check_settings,
    check_tracking_uri,
    dag_params,
    dag_run_prefix,
    dag_run_root,
    make_plan,
    param_type,
)

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)
DEPLOY_PACKAGE = __name__.rpartition(".")[0]
PACKAGE = DEPLOY_PACKAGE.removesuffix(DEPLOY_SUFFIX)
MEMORY_DATASETS = {"MemoryDataset", "SharedMemoryDataset"}
RUNTIME_PATTERNS = {"{default}": {"type": "MemoryDataset"}}
CHECK_RUN_ID = "check"  # the run id of the DAG run the catalog check resolves for
# The names of the variables a DAG gives its tasks, for the DAG template (plan.py's).
TASK_VARIABLES = SimpleNamespace(
    dag_id=DAG_RUN_VARIABLES[0],
    run_id=DAG_RUN_VARIABLES[1],
    run_after=DAG_RUN_AFTER_VARIABLE,
    inputs=DAG_INPUTS_VARIABLE,
    params=DAG_PARAMS_VARIABLE,
)
# A DAG's tasks run with KEDRO_MLFLOW=off when its MLflow tasks are off: no tracking.
TRACKING_SWITCH = "KEDRO_MLFLOW"
# Pipelines the deployment registers for its DAGs' own tasks: no DAG of their own.
DAG_ONLY = (MLFLOW_START,)
_session_loader: list[AbstractConfigLoader] = []  # the running session's, if any


def tracking_on() -> bool:
    return os.environ.get(TRACKING_SWITCH, "").lower() != "off"


def project_hooks(mlflow: bool) -> tuple[Any, ...]:
    """The hooks of settings.py's HOOKS: the DAGs', and MLflow's when it tracks."""
    if not (mlflow and tracking_on()):
        return (DagHooks(),)
    from .mlflow_hooks import MlflowDatasetHooks, MlflowRunHooks  # noqa: PLC0415

    return (DagHooks(), MlflowDatasetHooks(), MlflowRunHooks())


def disabled_plugins(mlflow: bool) -> tuple[str, ...]:
    """settings.py's DISABLE_HOOKS_FOR_PLUGINS: kedro-mlflow, when it must not track."""
    return () if mlflow and tracking_on() else ("kedro_mlflow",)  # its metadata name


def dag_run_resolver(root: str, *, _parent_: Any) -> str:
    """``${dag_run:<root>}`` in the catalog entry of a dataset: in a task of a DAG
    run, the run's own folder below ``root`` (plan.dag_run_root), unless the DAG's
    pipeline takes the dataset from outside it; then, as anywhere else, ``root``."""
    dataset = _parent_._key()
    taken = json.loads(os.environ.get(DAG_INPUTS_VARIABLE) or "[]")
    if dataset in taken or ("{" in dataset and any(parse(dataset, n) for n in taken)):
        return root
    return dag_run_root(root)


# The resolvers settings.py registers: ${dag_run:<root>} (conf/base/catalog.yml).
RESOLVERS = {"dag_run": dag_run_resolver}


def dag_run_save_version() -> str | None:
    """In a task of a DAG run, the save version every task of the run stamps its
    versioned datasets with: the run's `run_after`, in Kedro's format; else None."""
    run_after = os.environ.get(DAG_RUN_AFTER_VARIABLE)
    if not run_after:
        return None
    stamp = datetime.fromisoformat(run_after).astimezone(UTC).strftime(VERSION_FORMAT)
    return stamp[:-4] + stamp[-1:]  # milliseconds, as kedro.io.core.generate_timestamp


class DagRunCatalog(DataCatalog, CatalogCommandsMixin):  # as Kedro composes them
    """settings.py's DATA_CATALOG_CLASS: Kedro's own, but in a task of a DAG run its
    versioned datasets save the run's version, not the session's (each task's start
    time), so that a run's tasks load exactly what its upstream tasks saved."""

    @classmethod
    def from_config(  # noqa: D102 (Kedro's)
        cls, catalog, credentials=None, load_versions=None, save_version=None, **kwargs
    ):
        return super().from_config(
            catalog,
            credentials,
            load_versions,
            dag_run_save_version() or save_version,
            **kwargs,
        )


def project_pipelines() -> dict[str, Pipeline]:
    """The registry's ``find_pipelines(raise_errors=True)``, also when a run asks for
    the deployment's pipelines (`kedro run --pipelines start_mlflow_run`, the first
    task in pod mode): Kedro looks for each pipeline a run names in pipelines/, where
    those are not, and would refuse the run."""
    # What `kedro run --pipelines` asked for (Kedro 1.7 and later), or None: every one.
    requested = getattr(pipelines, "_requested_pipelines", None)
    if requested is not None and set(requested) & set(DAG_ONLY):
        pipelines.set_requested([name for name in requested if name not in DAG_ONLY])
    return find_pipelines(raise_errors=True)


def dag_pipelines() -> dict[str, Pipeline]:
    """The pipelines the DAGs run besides the project's: with MLflow, the first task's
    in pod mode (``start_mlflow_run``)."""
    try:
        from .mlflow_runs import start_from_environment  # noqa: PLC0415
    except ImportError:  # a project baked without MLflow
        return {}
    from kedro.pipeline import Node  # noqa: PLC0415

    # Its output, the run id, only shows in the log: the other tasks find the run.
    start = Node(
        start_from_environment, None, "mlflow_run_id", name=f"{MLFLOW_START}_node"
    )
    return {MLFLOW_START: Pipeline([start])}


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


def project_dir() -> Path:
    return find_kedro_project(Path.cwd()) or Path.cwd()


@_cli_errors
def check_tagging(registered: Mapping[str, Pipeline]) -> None:
    """Raise ``PlanError`` if a pipeline's tags cannot make a DAG.

    In a session, the settings are the session's environment's; outside one, those of
    conf/base and of the environment in ``KEDRO_ENV``, if any. ``kedro airflow
    create`` checks again, the datasets too.
    """
    if _session_loader:
        loader = _session_loader[-1]
    else:
        loader = config.project_loader(project_dir(), os.environ.get("KEDRO_ENV"))
    settings = DagSettings(loader, registered)
    for name in registered if settings.raw else ():
        if name not in DAG_ONLY:
            settings.plan(name)


class DagSettings(Mapping[str, Any]):
    """``airflow.yml`` as kedro-airflow reads it: ``default``, then one section per
    pipeline, whose value is what the DAG template gets (see ``__getitem__``).

    Given ``catalog`` (an environment's catalog configuration), the plans are checked
    to persist every dataset that crosses from one task to another.
    """

    @_cli_errors
    def __init__(
        self,
        loader: AbstractConfigLoader,
        registered: Mapping[str, Pipeline],
        tasks_config: Callable[[str, str, Mapping[str, str]], dict[str, Any]]
        | None = None,
    ):
        self.loader, self.env = loader, loader.env or loader.default_run_env
        self.registered, self.tasks_config = registered, tasks_config
        self.raw = _raw_settings(loader)
        self.plans: dict[str, Plan] = {}
        if unknown := sorted(set(self.raw) - {"default", *registered}):
            raise PlanError(
                f"{self.origin(unknown[0])}: `{unknown[0]}` is not `default` nor a "
                f"registered pipeline ({', '.join(registered)})."
            )

    def origin(self, *keys: str) -> str:
        return config.origin(self.loader, "airflow", *keys)

    @_cli_errors
    def __getitem__(self, section: str) -> dict[str, Any]:
        """The template's variables for the pipeline ``section``: ``settings`` (its
        checked settings, the package, and the MLflow server it logs to), its
        ``plan``, the ``helper`` module its DAG imports, and the functions that write
        values into the DAG safely (``dags.TEMPLATE_FUNCTIONS``)."""
        if section == "default":
            return dict(self.raw.get("default") or {})
        if section not in self.registered:
            raise KeyError(section)
        if section in DAG_ONLY:
            raise PlanError(
                f"`{section}` is a pipeline of the DAGs' own tasks, not one to make "
                "a DAG of. Name another with --pipelines."
            )
        settings = self.settings(section)
        values = settings | self.tracking(settings) | {"package": PACKAGE}
        plan = self.plan(section)
        return {
            "settings": SimpleNamespace(**values),
            "plan": plan,
            "params": self.params(plan),
            "variables": TASK_VARIABLES,
            "helper": dags.helper_module(),
            **dags.TEMPLATE_FUNCTIONS,
        }

    def params(self, plan: Plan) -> list[tuple[str, Any, str | None]]:
        """(dotted key, conf's value, JSON-schema type) of each parameter the plan's
        nodes take, as the environment its tasks run with has them."""
        if not self.tasks_config:
            return []
        parameters = self.tasks_config(plan.env, "parameters", {})
        nodes = self.registered[plan.pipeline].nodes
        leaves = dag_params(
            parameters, [name for node in nodes for name in node.inputs]
        )
        return [(key, value, param_type(value)) for key, value in leaves.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(["default", *self.registered])

    def __len__(self) -> int:
        return 1 + len(self.registered)

    def __contains__(self, section: object) -> bool:
        return section == "default" or section in self.registered

    def settings(self, section: str) -> dict[str, Any]:
        """The section's checked settings: ``default``, the section, ``--params``."""
        params = _cli_params()
        merged = dict(self.raw.get("default") or {})
        merged |= self.raw.get(section) or {}
        merged |= params

        def where(key: str) -> str:
            if key in params:
                return "--params"
            if key in (self.raw.get(section) or {}):
                return self.origin(section, key)
            return self.origin("default", key)

        # Which file set a key is read only for a message about it.
        files = _Lazy(merged, functools.cache(where))
        checked = check_settings(merged, files, self.origin("default"))
        # The local operator's tasks run here unless told otherwise.
        return checked | {"project_dir": checked["project_dir"] or str(project_dir())}

    def tracking(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The MLflow server and experiment of the DAG's runs, from mlflow.yml (that of
        the environment the tasks run with, as kedro-mlflow reads it in them), when its
        MLflow tasks are on."""
        if settings["mlflow_tasks_on"] == "off":
            return {}
        tasks_env = settings["kedro_env"] or self.env
        with environment(tasks_env, self.env, self.loader) as loader:
            mlflow = config.read(loader, "mlflow")
        uri = (mlflow.get("server") or {}).get("mlflow_tracking_uri")
        where = config.origin(loader, "mlflow", "server", "mlflow_tracking_uri")
        if not mlflow:
            raise PlanError(
                f"{self.origin('default', 'mlflow_tasks_on')}: `mlflow_tasks_on` is "
                f"{settings['mlflow_tasks_on']!r}, but no conf/*/mlflow.yml says "
                "where to log. Set `mlflow_tasks_on: off`, or add mlflow.yml."
            )
        experiment = ((mlflow.get("tracking") or {}).get("experiment") or {}).get(
            "name"
        )
        if not isinstance(experiment, str) or not experiment:
            raise PlanError(
                f"{config.origin(loader, 'mlflow', 'tracking')}: "
                "`tracking.experiment.name` must name the DAG runs' MLflow experiment."
            )
        return {
            "mlflow_tracking_uri": check_tracking_uri(uri, where),
            "mlflow_experiment": experiment,
        }

    @_cli_errors
    def plan(self, section: str) -> Plan:
        """The pipeline's task plan; raises ``PlanError``."""
        if section in self.plans:
            return self.plans[section]
        settings = self.settings(section)
        nodes = node_specs(self.registered[section])
        plan = make_plan(PACKAGE, section, self.env, nodes, settings)
        if self.tasks_config:
            # As a task of a DAG run of this plan resolves it (see dag_run_resolver).
            dag_id, run_id = DAG_RUN_VARIABLES
            dag_run = {
                dag_id: plan.dag_id,
                run_id: CHECK_RUN_ID,
                DAG_INPUTS_VARIABLE: plan.inputs_json,
            }
            self.check_datasets(plan, self.tasks_config(plan.env, "catalog", dag_run))
        for warning in plan.warnings:
            logger.warning(warning)
        self.plans[section] = plan
        return plan

    @staticmethod
    def check_datasets(plan: Plan, catalog: dict[str, Any]) -> None:
        """Raise unless every dataset crossing between tasks is persisted in the
        environment the tasks run with (its ``catalog``, as a task of a DAG run sees
        it), pods sharing nothing else, and in the DAG run's own folder, so that
        overlapping runs never overwrite each other's copy."""
        resolver = CatalogConfigResolver(
            _without_credentials(catalog), None, RUNTIME_PATTERNS
        )
        folder = dag_run_prefix(plan.dag_id, CHECK_RUN_ID)
        problems = []
        for dataset, upstream, downstream in plan.crossings:
            entry = resolver.resolve_pattern(dataset)
            crossing = (
                f"Pipeline `{plan.pipeline}`: dataset `{dataset}` goes from task "
                f"`{upstream}` to task `{downstream}`"
            )
            if str(entry.get("type")).rpartition(".")[2] in MEMORY_DATASETS:
                problems.append(
                    f"{crossing} but is a MemoryDataset in environment `{plan.env}`, "
                    "so it would be lost between the pods. Declare it in "
                    f"conf/{plan.env}/catalog.yml or conf/base/catalog.yml, or put "
                    "both nodes in one group."
                )
            elif isinstance(path := entry.get("filepath"), str) and folder not in path:
                problems.append(
                    f"{crossing} but its filepath in environment `{plan.env}`, "
                    f"{path}, is the same for every DAG run, so runs that overlap "
                    "would overwrite each other's copy. Start it with "
                    "${dag_run:${globals:data_root}}/ (see conf/base/catalog.yml)."
                )
        if problems:
            raise PlanError("\n".join(problems))


class DagHooks:
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """Teach the session's loader the deployment's settings; give kedro-airflow
        checked settings and plans instead of raw airflow.yml."""
        loader = context.config_loader
        config.register(loader)
        _session_loader[:] = [loader]  # before the registry first runs the check
        env = context.env or loader.default_run_env

        def tasks_config(
            tasks_env: str, kind: str, variables: Mapping[str, str]
        ) -> dict[str, Any]:
            with (
                _environment_variables(variables),
                environment(tasks_env, env, loader) as tasks_loader,
            ):
                return tasks_loader[kind]

        settings = DagSettings(loader, pipelines, tasks_config)
        if settings.raw:
            loader["airflow"] = settings
        if DAG_PARAMS_VARIABLE in os.environ:  # a task of a DAG run: its parameters
            given = json.loads(os.environ[DAG_PARAMS_VARIABLE])
            conf = dag_params(loader["parameters"], ["parameters"])
            loader.runtime_params = _merged(
                loader.runtime_params or {}, check_dag_params(given, conf)
            )


@contextlib.contextmanager
def environment(
    env: str, session_env: str, session_loader: AbstractConfigLoader
) -> Iterator[AbstractConfigLoader]:
    """The config loader of ``env``, which the tasks may run with rather than the
    session's: the session's own if it is that, else a new one, after which the
    session's is made again (each loader points ``${globals:}`` at its own globals)."""
    if env == session_env:
        yield session_loader
        return
    try:
        yield config.project_loader(project_dir(), env)
    finally:
        config.project_loader(project_dir(), session_env)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``, key by key in nested mappings."""
    merged = dict(base)
    for key, value in over.items():
        inner = merged.get(key)
        both = isinstance(inner, Mapping) and isinstance(value, Mapping)
        merged[key] = _merged(inner, value) if both else value
    return merged


@contextlib.contextmanager
def _environment_variables(variables: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``variables`` set, for as long as it lasts."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _raw_settings(loader: AbstractConfigLoader) -> dict[str, Any]:
    """airflow.yml as merged, even once the session's loader holds ``DagSettings``."""
    try:
        value = loader["airflow"]
    except MissingConfigException:
        return {}
    return value.raw if isinstance(value, DagSettings) else dict(value)


class _Lazy(Mapping[str, str]):
    """``{key: origin(key)}`` for ``keys``, each origin found when first asked."""

    def __init__(self, keys: Mapping[str, Any], origin: Callable[[str], str]):
        self.keys_, self.origin = keys, origin

    def __getitem__(self, key: str) -> str:
        if key not in self.keys_:
            raise KeyError(key)
        return self.origin(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)


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


def _without_credentials(catalog: dict[str, Any]) -> dict[str, Any]:
    """The catalog's entries, minus the credentials this check has no need of."""
    return {
        name: {k: v for k, v in entry.items() if k != "credentials"}
        for name, entry in catalog.items()
        if isinstance(entry, dict) and not name.startswith("_")
    }
