"""The Airflow task plan of a Kedro pipeline: which nodes run together, where, and how.

Nodes tagged ``<group prefix><group>`` (``airflow.split``) run together in one task,
one pod; every other node is a task of its own. ``<machine prefix><size>`` tags
(``machine.medium``) pick the pod's size among those ``airflow.yml`` declares,
smallest first. This module is the one implementation of those rules: the pipeline
registry, the project hooks, the DAG template and the tests all call it. It uses
the standard library only and knows nothing of Kedro or Airflow.
"""

from __future__ import annotations

import datetime
import hashlib
import heapq
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

POD_NAME_LENGTH = (
    54  # 63, a Kubernetes label's limit, less the operator's random suffix
)
TASK_ID_LENGTH = 250  # Airflow's limit
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
REQUIRED = object()
NONE = type(None)


class PlanError(ValueError):
    """The tagging or the configuration cannot make a working DAG."""


@dataclass(frozen=True)
class Setting:
    types: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple[Any, ...] = ()


SETTINGS = {
    "grouping": Setting(bool, True),
    "group_prefix": Setting(str, "airflow."),
    "machine_prefix": Setting(str, "machine."),
    "operator": Setting(str, "gke", ("gke", "kubernetes", "local")),
    "kedro_env": Setting((str, NONE), None),
    "project_dir": Setting((str, NONE), None),
    "gcp_project_id": Setting(str),
    "region": Setting(str),
    "cluster": Setting(str),
    "namespace": Setting(str),
    "service_account": Setting(str),
    "mount_service_account_token": Setting(bool, False),
    "image": Setting(str),
    "image_pull_policy": Setting(
        str, "IfNotPresent", ("IfNotPresent", "Always", "Never")
    ),
    "startup_timeout": Setting(int, 600),
    "execution_timeout": Setting(int, 120),
    "on_finish_action": Setting(
        str, "delete_pod", ("delete_pod", "delete_succeeded_pod", "keep_pod")
    ),
    "machines": Setting(dict),
    "default_machine": Setting(str),
    "start_date": Setting((str, datetime.date), "2026-01-01"),
    "schedule": Setting((str, NONE), None),
    "max_active_runs": Setting(int, 1),
    "catchup": Setting(bool, False),
    "tags": Setting(list, []),
    "owner": Setting(str, "airflow"),
    "depends_on_past": Setting(bool, False),
    "email": Setting(list, []),
    "email_on_failure": Setting(bool, False),
    "email_on_retry": Setting(bool, False),
    "retries": Setting(int, 1),
    "retry_delay": Setting((int, float), 5),
    # YAML reads an unquoted `off` as false: both mean no MLflow at all.
    "mlflow_tasks_on": Setting((str, bool), "off", ("worker", "pod", "off", False)),
    "mlflow_iap_audience": Setting((str, NONE), None),
}
MACHINE_KEYS = {"requests", "limits", "execution_timeout"}
# Where Cloud Composer 3 runs KubernetesPodOperator's pods, whatever a DAG says.
COMPOSER_NAMESPACE = "composer-user-workloads"
# The tasks a DAG with MLflow adds around the pipeline's: they start and end the one
# MLflow run of the DAG run. `start_mlflow_run` is also the pipeline the first runs
# in a pod (`mlflow_tasks_on: pod`).
MLFLOW_START, MLFLOW_END = "start_mlflow_run", "end_mlflow_run"
# The deployment layer of package `p` is the package `p_deploy`.
DEPLOY_SUFFIX = "_deploy"
REMOVED = {
    "schedule_interval": "Airflow 3 removed it: use `schedule`",
    "mlflow_start": "it is now `mlflow_tasks_on` (worker, pod or off)",
    "mlflow_tracking_uri": "the server is `server.mlflow_tracking_uri` in "
    "conf/<env>/mlflow.yml, which kedro-mlflow reads too",
    "mlflow_experiment": "the experiment is `tracking.experiment.name` in "
    "conf/<env>/mlflow.yml, which kedro-mlflow reads too",
}


@dataclass(frozen=True)
class NodeSpec:
    """What the plan needs to know of a Kedro node."""

    name: str
    tags: frozenset[str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """One Airflow task: one pod running some nodes of one pipeline."""

    id: str
    pod_name: str
    label: str  # the group tag, or the node name of a task of one node
    nodes: tuple[str, ...]
    selection: tuple[str, ...]  # the arguments of `kedro run` that pick the nodes
    machine: str
    command: tuple[str, ...]
    timeout: int  # minutes the task may run before Airflow stops it


@dataclass(frozen=True)
class Plan:
    dag_id: str
    pipeline: str
    env: str
    kedro_run: tuple[str, ...]  # the command every task shares, before its selection
    tasks: tuple[Task, ...]  # upstream tasks first
    edges: tuple[tuple[str, str], ...]  # (upstream id, downstream id)
    crossings: tuple[tuple[str, str, str], ...]  # (dataset, upstream id, downstream id)
    warnings: tuple[str, ...]
    # The datasets the pipeline takes from outside it (no node of it writes them):
    # its tasks read those from their usual place, not from the DAG run's folder.
    inputs: tuple[str, ...] = ()
    # With MLflow on: the first task, which starts the DAG run's MLflow run, and the
    # last, which ends it; their commands are for pods (`mlflow_tasks_on: pod`).
    start: Task | None = None
    end: Task | None = None

    @property
    def inputs_json(self) -> str:
        """``inputs`` as the DAG hands them to its tasks, in DAG_INPUTS_VARIABLE."""
        return json.dumps(list(self.inputs))

    @property
    def pipeline_label(self) -> str:
        return label_value(self.pipeline)

    @property
    def env_label(self) -> str:
        return label_value(self.env)


def check_types(
    config: Mapping[str, Any],
    schema: Mapping[str, Setting],
    where: Callable[[str], str],
    removed: Mapping[str, str] | None = None,
    missing: str = "",
) -> dict[str, Any]:
    """``config`` over the ``schema``'s defaults; raise naming the file (``where(key)``)
    and the key of an unknown, removed or mistyped setting, or a missing one."""
    for key, value in config.items():
        if key in (removed or {}):
            raise PlanError(f"{where(key)}: `{key}` is not a setting: {removed[key]}.")
        if key not in schema:
            raise PlanError(
                f"{where(key)}: unknown setting `{key}`. Known: {', '.join(schema)}."
            )
        setting, types = schema[key], _tuple(schema[key].types)
        items = value if isinstance(value, list) else []
        if (
            not isinstance(value, types)
            or (isinstance(value, bool) and bool not in types)
            or not all(isinstance(item, str) for item in items)
        ):
            expected = " or ".join(t.__name__ for t in types).replace(
                "NoneType", "null"
            )
            expected += " of strings" if list in types else ""
            raise PlanError(f"{where(key)}: `{key}` must be {expected}, not {value!r}.")
        if setting.choices and value not in (*setting.choices, None):
            choices = ", ".join(str(c) for c in setting.choices if c is not False)
            raise PlanError(
                f"{where(key)}: `{key}` must be one of {choices}, not {value!r}."
            )
    settings = {key: s.default for key, s in schema.items()} | dict(config)
    if absent := [key for key, value in settings.items() if value is REQUIRED]:
        raise PlanError(
            f"{where(absent[0])}: missing setting(s) {', '.join(absent)} {missing}".rstrip()
            + "."
        )
    return settings


def check_settings(
    config: Mapping[str, Any], files: Mapping[str, str], default_file: str
) -> dict[str, Any]:
    """Return the DAG settings with defaults filled in, or raise naming the bad key.

    ``files`` tells which file set each key; missing keys belong in ``default_file``.
    """

    def where(key: str) -> str:
        return files.get(key, default_file)

    schema = dict(SETTINGS)
    operator = config.get("operator", SETTINGS["operator"].default)
    if operator != "gke":
        # Only GKEStartPodOperator names a cluster, and its pods a service account.
        schema["cluster"] = Setting((str, NONE), None)
        schema["service_account"] = Setting((str, NONE), None)
    settings = check_types(config, schema, where, REMOVED, missing="under `default`")
    if settings["operator"] == "kubernetes":
        _check_composer_pods(settings, where)
    if settings["mlflow_tasks_on"] is False:
        settings["mlflow_tasks_on"] = "off"
    _check_machines(settings, where("machines"))
    for key in ("execution_timeout", "startup_timeout"):
        if settings[key] <= 0:
            raise PlanError(
                f"{where(key)}: `{key}` must be positive, not {settings[key]}."
            )
    if settings["operator"] == "local" and settings["mlflow_tasks_on"] == "pod":
        raise PlanError(
            f"{where('mlflow_tasks_on')}: `mlflow_tasks_on: pod` needs pods, and "
            "`operator` is local. Use `mlflow_tasks_on: worker`: the local Airflow "
            "reaches the server itself."
        )
    try:
        start = datetime.date.fromisoformat(str(settings["start_date"]))
    except ValueError:
        raise PlanError(
            f"{where('start_date')}: `start_date` must be a date like 2026-01-01, not "
            f"{settings['start_date']!r}."
        ) from None
    return settings | {"start_date": start}


def _check_composer_pods(settings: Mapping[str, Any], where: Callable) -> None:
    """What Cloud Composer 3 does with KubernetesPodOperator's pods whatever a DAG
    says: they run in its own namespace, as the environment's service account."""
    if settings["namespace"] != COMPOSER_NAMESPACE:
        raise PlanError(
            f"{where('namespace')}: `namespace: {settings['namespace']}`, but Cloud "
            f"Composer 3 runs KubernetesPodOperator's pods only in {COMPOSER_NAMESPACE}, "
            f"whatever a DAG says. Set `namespace: {COMPOSER_NAMESPACE}`, or `operator: "
            "gke` to run them on a GKE cluster of your own."
        )
    if settings["service_account"] is not None:
        raise PlanError(
            f"{where('service_account')}: `service_account: "
            f"{settings['service_account']}`, but on Cloud Composer 3's cluster the "
            "pods run as the environment's service account, and no other can be made "
            "there. Set `service_account: null` (grant the environment's service "
            "account what the pods need), or `operator: gke` for a cluster of your own."
        )


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _check_machines(settings: dict[str, Any], where: str) -> None:
    for size, resources in settings["machines"].items():
        if not isinstance(resources, Mapping) or not resources.keys() <= MACHINE_KEYS:
            raise PlanError(
                f"{where}: machine `{size}` may have only {', '.join(sorted(MACHINE_KEYS))}."
            )
        timeout = resources.get("execution_timeout", 1)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise PlanError(
                f"{where}: machines.{size}.execution_timeout must be a positive number "
                f"of minutes, not {timeout!r}."
            )
        for kind in ("requests", "limits"):
            for resource, quantity in dict(resources.get(kind) or {}).items():
                if not QUANTITY.match(str(quantity)):
                    raise PlanError(
                        f"{where}: machines.{size}.{kind}.{resource} is {quantity!r}, "
                        "not a Kubernetes quantity such as 500m, 2 or 4Gi."
                    )
    if settings["default_machine"] not in settings["machines"]:
        raise PlanError(
            f"{where}: `default_machine` is {settings['default_machine']!r}, which "
            f"`machines` does not declare ({', '.join(settings['machines'])})."
        )


def tracking_uri_problem(uri: Any) -> str | None:
    """Why ``uri`` cannot be the MLflow server of the DAG's tasks, if it cannot: it
    must be an http(s) address (they share no disk), and carry no credentials (it is
    written into the DAG files)."""
    parts = urlsplit(uri if isinstance(uri, str) else "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "pods share no disk, so the MLflow tracking URI must be an http(s):// "
            "server address"
        )
    if parts.username is not None or parts.password is not None:
        return (
            "it carries credentials, which would be written into the DAG files and "
            "the README: give the bare address. The pods and Composer authenticate "
            "as their service accounts (see mlflow_iap_audience), or the tasks get "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from a secret"
        )
    return None


def check_tracking_uri(uri: Any, where: str) -> str:
    """``uri``, if it can be the MLflow server of the DAG's tasks; else raise."""
    if problem := tracking_uri_problem(uri):
        raise PlanError(f"{where}: `server.mlflow_tracking_uri` is {uri!r}: {problem}.")
    return uri


def make_plan(
    package: str,
    pipeline: str,
    env: str,
    nodes: Iterable[NodeSpec],
    settings: Mapping[str, Any],
) -> Plan:
    """Group ``nodes`` (in the pipeline's order) into tasks; raise if that breaks.

    ``env`` is the Kedro environment the DAG is made for; the tasks run with the
    ``kedro_env`` setting's, if any.
    """
    nodes = list(nodes)
    dag_id = _task_id(f"{package}-{pipeline}-{env}")  # the environment it is made for
    env = settings["kedro_env"] or env  # the environment its tasks run with
    declared = list(settings["machines"])
    problems: list[str] = []
    warnings: list[str] = []
    members: dict[str, list[NodeSpec]] = {}
    for node in nodes:
        members.setdefault(_task_label(node, settings, pipeline, problems), []).append(
            node
        )
    if problems:
        raise PlanError("\n".join(problems))

    # A retried (or cleared) task runs only the nodes whose outputs its DAG run's
    # folder lacks: a group that failed at its last node does not redo the first.
    kedro_run = ("python", "-m", "kedro", "run", "--pipelines", pipeline, "--env", env)
    kedro_run += ("--only-missing-outputs",)
    tasks = {}
    for label, group in members.items():
        asked = _machines_asked(group, settings, pipeline, problems)
        machine = max(asked, key=declared.index, default=settings["default_machine"])
        if len(asked) > 1:
            sizes = "; ".join(
                f"{size}: {', '.join(names)}" for size, names in asked.items()
            )
            warnings.append(
                f"Pipeline `{pipeline}`: the nodes of `{label}` ask for different "
                f"machines ({sizes}); the task gets the largest, `{machine}`."
            )
        if label == group[0].name:  # a task of one node
            name, selection = label, ("--nodes", label)
        else:  # `--tags <group tag>` within `--pipelines` runs exactly the group
            name, selection = (
                label.removeprefix(settings["group_prefix"]),
                ("--tags", label),
            )
        tasks[label] = Task(
            id=_task_id(name),
            pod_name=_pod_name(name),
            label=label,
            nodes=tuple(node.name for node in group),
            selection=selection,
            machine=machine,
            command=(*kedro_run, *selection),
            timeout=_timeout(settings, machine),
        )
    if problems:
        raise PlanError("\n".join(problems))
    start = end = None
    if settings["mlflow_tasks_on"] != "off":
        start_run = (*kedro_run[:4], "--pipelines", MLFLOW_START, "--env", env)
        end_run = ("python", "-m", f"{package}{DEPLOY_SUFFIX}.mlflow_runs", "end")
        start = _mlflow_task(MLFLOW_START, start_run, settings)
        end = _mlflow_task(MLFLOW_END, end_run, settings)
    _check_names([*tasks.values(), *filter(None, (start, end))], pipeline)

    task_of = {
        node.name: tasks[label] for label, group in members.items() for node in group
    }
    producer = {output: node.name for node in nodes for output in node.outputs}
    edges: dict[tuple[str, str], None] = {}
    crossings = []
    for node in nodes:
        for dataset in node.inputs:
            if dataset in producer:
                upstream, downstream = task_of[producer[dataset]], task_of[node.name]
                if upstream is not downstream:
                    edges[upstream.label, downstream.label] = None
                    crossings.append((dataset, upstream.id, downstream.id))
    order = _topological(list(tasks), list(edges), pipeline)
    rank = {label: i for i, label in enumerate(order)}
    edge_list = sorted(edges, key=lambda e: (rank[e[0]], rank[e[1]]))
    return Plan(
        dag_id=dag_id,
        pipeline=pipeline,
        env=env,
        kedro_run=kedro_run,
        tasks=tuple(tasks[label] for label in order),
        edges=tuple((tasks[a].id, tasks[b].id) for a, b in edge_list),
        crossings=tuple(sorted(set(crossings))),
        warnings=tuple(warnings),
        inputs=tuple(
            sorted(
                {
                    dataset
                    for node in nodes
                    for dataset in node.inputs
                    if dataset not in producer and not _is_parameters(dataset)
                }
            )
        ),
        start=start,
        end=end,
    )


def _is_parameters(dataset: str) -> bool:
    return dataset == "parameters" or dataset.startswith("params:")


def _mlflow_task(
    name: str, command: tuple[str, ...], settings: Mapping[str, Any]
) -> Task:
    return Task(
        id=name,
        pod_name=_pod_name(name),
        label=name,
        nodes=(),
        selection=(),
        machine=settings["default_machine"],
        command=command,
        timeout=_timeout(settings, settings["default_machine"]),
    )


def _timeout(settings: Mapping[str, Any], machine: str) -> int:
    """Minutes a task on ``machine`` may run: the machine's own, else the default."""
    return settings["machines"][machine].get(
        "execution_timeout", settings["execution_timeout"]
    )


def _task_label(
    node: NodeSpec, settings: Mapping[str, Any], pipeline: str, problems: list[str]
) -> str:
    prefix = settings["group_prefix"]
    if not settings["grouping"]:
        return node.name
    if node.name.startswith(prefix):
        problems.append(
            f"Pipeline `{pipeline}`: node `{node.name}` starts with the grouping prefix "
            f"`{prefix}`, so its name reads as a group. Rename the node."
        )
    groups = sorted(tag for tag in node.tags if tag.startswith(prefix))
    if len(groups) > 1:
        problems.append(
            f"Pipeline `{pipeline}`: node `{node.name}` has {len(groups)} grouping tags "
            f"({', '.join(groups)}); a node runs in one task. Keep one of them."
        )
    elif groups == [prefix]:
        problems.append(
            f"Pipeline `{pipeline}`: node `{node.name}` has the tag `{prefix}` with no "
            f"group name. Use `{prefix}<group>`."
        )
    return groups[0] if groups else node.name


def _machines_asked(
    group: list[NodeSpec],
    settings: Mapping[str, Any],
    pipeline: str,
    problems: list[str],
) -> dict[str, list[str]]:
    """Map each declared size the ``group``'s nodes ask for to the nodes asking."""
    prefix, declared = settings["machine_prefix"], list(settings["machines"])
    asked: dict[str, list[str]] = {}
    for node in group:
        for tag in sorted(node.tags):
            size = tag.removeprefix(prefix)
            if not tag.startswith(prefix):
                continue
            if size in declared:
                asked.setdefault(size, []).append(node.name)
            else:
                problems.append(
                    f"Pipeline `{pipeline}`: node `{node.name}` asks for machine "
                    f"`{size}`, which airflow.yml does not declare. Declared sizes: "
                    f"{', '.join(declared)}."
                )
    return asked


def _shorten(name: str, length: int, separator: str) -> str:
    """Cut ``name`` to ``length``, ending with a hash of the whole, so long names stay distinct."""
    if len(name) <= length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: length - 9]}{separator}{digest}"


def _task_id(name: str) -> str:
    """An Airflow task id: letters, digits, `_`, `.` and `-`."""
    return _shorten(re.sub(r"[^A-Za-z0-9_.-]", "_", name), TASK_ID_LENGTH, "_")


def _pod_name(name: str) -> str:
    """A DNS-1123 label: lowercase letters, digits and `-`, alphanumeric at both ends."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "task"
    return _shorten(slug, POD_NAME_LENGTH, "-")


# What a DAG gives each of its tasks: the DAG run they belong to, when it was due
# (its `run_after`, which makes the save version its tasks share) and the datasets
# its pipeline takes from outside it (Plan.inputs_json).
DAG_RUN_VARIABLES = ("AIRFLOW_DAG_ID", "AIRFLOW_RUN_ID")
DAG_RUN_AFTER_VARIABLE = "KEDRO_DAG_RUN_AFTER"
DAG_INPUTS_VARIABLE = "KEDRO_DAG_INPUTS"


def dag_run_prefix(dag_id: str, run_id: str) -> str:
    """Where the tasks of one DAG run hand their data to each other, below the data
    root: ``runs/<DAG id>/<run id>``, each part path-safe (a part that had to change
    keeps a hash of the original, so two runs never share a folder)."""
    return "/".join(("runs", _path_part(dag_id), _path_part(run_id)))


def dag_run_root(root: str) -> str:
    """In a task of an Airflow DAG run (which has the DAG_RUN_VARIABLES),
    ``<root>/runs/<DAG id>/<run id>``, the run's own folder; anywhere else ``<root>``
    itself, so a `kedro run` reads and writes as ever."""
    dag_id, run_id = (os.environ.get(name) for name in DAG_RUN_VARIABLES)
    if not (dag_id and run_id):
        return root
    return f"{root.rstrip('/')}/{dag_run_prefix(dag_id, run_id)}"


def _path_part(name: str) -> str:
    """A folder name for a local disk and Cloud Storage alike: [A-Za-z0-9_.-]."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip(".")
    if safe == name:
        return name
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".lstrip("-")


# The parameters a DAG run is triggered with reach every task in this variable: a
# JSON object of dotted keys (model_options.test_size), as Airflow resolved them.
DAG_PARAMS_VARIABLE = "KEDRO_DAG_PARAMS"
# The JSON-schema type of a parameter, by the type of its value in conf/ (bool first:
# it is an int too). A parameter whose value is null takes any value.
PARAM_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def param_type(value: Any) -> str | None:
    return next((name for kind, name in PARAM_TYPES if isinstance(value, kind)), None)


def dag_params(parameters: Mapping[str, Any], used: Iterable[str]) -> dict[str, Any]:
    """The parameters a DAG run can be given: the leaves (numbers, strings, lists...)
    of those its nodes take (``params:<key>`` inputs, or all of ``parameters``), by
    dotted key, with their values in ``parameters`` (conf's)."""
    leaves: dict[str, Any] = {}
    for name in sorted(set(used)):
        if name == "parameters":
            leaves |= _leaves(parameters, "")
        elif name.startswith("params:"):
            key = name.removeprefix("params:")
            value: Any = parameters
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            leaves |= _leaves(value, key)
    return dict(sorted(leaves.items()))


def _leaves(value: Any, key: str) -> dict[str, Any]:
    if not (isinstance(value, Mapping) and value):
        return {key: value}
    found: dict[str, Any] = {}
    for name, inner in value.items():
        found |= _leaves(inner, f"{key}.{name}" if key else str(name))
    return found


def check_dag_params(given: Mapping[str, Any], conf: Mapping[str, Any]) -> dict:
    """The parameters a DAG run was triggered with (``given``, by dotted key), as
    nested values over conf's; raise ``PlanError`` naming each unknown key and each
    value of the wrong type, and what was expected."""
    problems = []
    for key, value in given.items():
        if key not in conf:
            problems.append(
                f"`{key}` is not a parameter of this project; its parameters are "
                f"{', '.join(conf) or '(none)'}."
            )
            continue
        expected, got = param_type(conf[key]), param_type(value)
        if expected and got != expected and (expected, got) != ("number", "integer"):
            problems.append(
                f"`{key}` is {json.dumps(value)}: expected {expected} (conf's value is "
                f"{json.dumps(conf[key])})."
            )
    if problems:
        raise PlanError(
            "The parameters this DAG run was triggered with are wrong:\n"
            + "\n".join(problems)
        )
    nested: dict[str, Any] = {}
    for key, value in given.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def label_value(value: str) -> str:
    """A Kubernetes label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value)[:63].strip("_.-")


def _check_names(tasks: Iterable[Task], pipeline: str) -> None:
    for attribute, what in (("id", "Airflow task id"), ("pod_name", "pod name")):
        seen: dict[str, Task] = {}
        for task in tasks:
            name = getattr(task, attribute)
            if name in seen and not task.nodes:  # an MLflow task's own name
                raise PlanError(
                    f"Pipeline `{pipeline}`: `{seen[name].label}` becomes the {what} "
                    f"`{name}`, which the DAG's MLflow task has. Rename it."
                )
            if name in seen:
                raise PlanError(
                    f"Pipeline `{pipeline}`: `{seen[name].label}` and `{task.label}` "
                    f"both become the {what} `{name}`. Rename one of them."
                )
            seen[name] = task


def _topological(
    labels: list[str], edges: list[tuple[str, str]], pipeline: str
) -> list[str]:
    """Order tasks upstream first, ties in pipeline order; raise on a cycle."""
    position = {label: i for i, label in enumerate(labels)}
    downstream: dict[str, list[str]] = {label: [] for label in labels}
    waiting = dict.fromkeys(labels, 0)
    for upstream, down in edges:
        downstream[upstream].append(down)
        waiting[down] += 1
    ready = [position[label] for label in labels if not waiting[label]]
    order = []
    while ready:
        label = labels[heapq.heappop(ready)]
        order.append(label)
        for down in downstream[label]:
            waiting[down] -= 1
            if not waiting[down]:
                heapq.heappush(ready, position[down])
    if len(order) < len(labels):
        cycle = _cycle({k: v for k, v in downstream.items() if waiting[k]}, position)
        raise PlanError(
            f"Pipeline `{pipeline}`: grouping makes tasks depend on themselves: "
            f"{' -> '.join(cycle)}. Put the nodes in between into the group too, or "
            "take the group apart."
        )
    return order


def _cycle(downstream: dict[str, list[str]], position: dict[str, int]) -> list[str]:
    """Find a loop among the unsorted tasks, each of which has an unsorted upstream."""
    upstream = {
        d: u for u, downs in downstream.items() for d in downs if d in downstream
    }
    path, seen = [min(downstream, key=position.__getitem__)], set()
    while path[-1] not in seen:
        seen.add(path[-1])
        path.append(upstream[path[-1]])
    loop = path[path.index(path[-1]) : -1][::-1]  # downstream order, each once
    first = loop.index(min(loop, key=position.__getitem__))
    loop = loop[first:] + loop[:first]
    return [*loop, loop[0]]
