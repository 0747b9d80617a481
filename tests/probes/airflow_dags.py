"""Load DAG folders in a real Airflow and print what it made of them, as JSON.

Runs with the Python of an Airflow environment (the baked project's, or the oldest
Airflow 3 that Composer offers), never the Kedro one: `python airflow_dags.py
<report.json> <dag folder>...` (Airflow logs to standard output, hence the file). Each
folder loads as Airflow loads its DAG folder, on ``sys.path``, so the DAGs import the
helper module beside them. The report has, per Python file of each folder, its
import errors and its DAGs; per DAG, whether Airflow serializes it (as the DAG
processor does to store it); per task, its fields rendered by the DAG's own Jinja
environment against a stand-in task instance (see ``StandInTaskInstance``) as a run
renders them (or why they do not render), and for a pod task the pod the provider
builds from them.
"""

import importlib.metadata
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

try:  # Airflow 3.2 and later
    from airflow.dag_processing.dagbag import BundleDagBag

    def dag_bag(folder: Path):
        return BundleDagBag(dag_folder=folder, bundle_path=folder)
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import DagBag

    def dag_bag(folder: Path):
        sys.path.insert(0, str(folder))
        return DagBag(dag_folder=folder, include_examples=False)


from airflow.serialization import serialized_objects
from kubernetes.client import ApiClient

# What the DAG processor serializes a DAG with: DagSerialization from Airflow 3.2 on.
Serialization = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG

RUN_ID = "manual__2026-11-26T08:30:12+00:00"
RUN_AFTER = datetime(2026, 11, 26, 8, 30, 12, tzinfo=UTC)  # that run's
VERSIONS = {
    name: importlib.metadata.version(name)
    for name in ("apache-airflow", "apache-airflow-providers-cncf-kubernetes", "apache-airflow-providers-google")
}


class StandInTaskInstance:
    """The ``ti`` of a template: an XCom pull names the task it pulls from, and every
    task of the DAG run succeeded."""

    def __init__(self, dag, task):
        self.dag, self.dag_id, self.task_id, self.run_id = dag, dag.dag_id, task.task_id, RUN_ID

    def xcom_pull(self, task_ids=None, **_):
        return f"<XCom of {task_ids}>"

    def get_task_states(self, dag_id, run_ids, **_):
        assert dag_id == self.dag_id, dag_id
        return {run_id: dict.fromkeys(self.dag.task_ids, "success") for run_id in run_ids}


class StandInHook:
    """The cluster's hook, as far as building a pod asks it: the provider's defaults
    (the real one asks GKE, or a connection, for its cluster)."""

    is_in_cluster = False

    def get_xcom_sidecar_container_image(self):
        return None

    def get_xcom_sidecar_container_resources(self):
        return None

    def get_xcom_sidecar_container_security_context(self):
        return None


def pod(operator) -> dict:
    """The pod the operator would ask Kubernetes for, built by the provider's code."""
    operator.__dict__["hook"] = StandInHook()  # over the cached property
    try:
        request = operator.build_pod_request_obj(dry_run=True)
    except TypeError:  # cncf-kubernetes before 10.21
        request = operator.build_pod_request_obj()
    manifest = ApiClient().sanitize_for_serialization(request)
    spec, container = manifest["spec"], manifest["spec"]["containers"][0]
    return {
        "manifest": manifest,
        "name": manifest["metadata"]["name"],
        "labels": manifest["metadata"].get("labels", {}),
        "annotations": manifest["metadata"].get("annotations", {}),
        "service_account": spec.get("serviceAccountName"),
        "automount_token": spec.get("automountServiceAccountToken"),
        "namespace": manifest["metadata"]["namespace"],
        "image": container["image"],
        "command": container.get("command"),
        "resources": container.get("resources", {}),
        "env": {var["name"]: var.get("value") for var in container.get("env", [])},
        "containers": [c["name"] for c in spec["containers"]],
    }


def task_report(dag, task) -> dict:
    report = {
        "operator": type(task).__name__,
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "is_setup": task.is_setup,
        "is_teardown": task.is_teardown,
        "trigger_rule": str(task.trigger_rule.value),
        "do_xcom_push": task.do_xcom_push,
        "execution_timeout": task.execution_timeout.total_seconds() if task.execution_timeout else None,
        "env": {},
        "render_error": None,
    }
    # As a run renders them before it executes (strict: an unknown name fails).
    context = {
        "ti": StandInTaskInstance(dag, task),
        "run_id": RUN_ID,
        "dag_run": SimpleNamespace(run_id=RUN_ID, run_after=RUN_AFTER),
        "dag": dag,
        "params": dag.params,
    }
    try:
        task.render_template_fields(context, jinja_env=dag.get_template_env())
    except Exception as error:  # a value read as a template, or as a template's file name
        report["render_error"] = f"{type(error).__name__}: {error}"
        return report
    if hasattr(task, "build_pod_request_obj"):
        report["pod"] = pod(task)
        report["env"] = report["pod"]["env"]
        # GKEStartPodOperator's own templated fields: the cluster it starts the pod on.
        report["cluster"] = {key: getattr(task, key, None) for key in ("project_id", "location", "cluster_name")}
    elif report["operator"] == "BashOperator":
        report |= {"bash_command": task.bash_command, "cwd": task.cwd, "append_env": task.append_env}
        report["env"] = dict(task.env or {})
    elif report["operator"] == "PythonOperator":
        function = task.python_callable
        report["python_callable"] = f"{function.__module__}.{function.__qualname__}"
        report["op_kwargs"] = dict(task.op_kwargs)
    return report


def serialized(dag) -> str | None:
    """Why Airflow cannot serialize ``dag`` for its database, if it cannot."""
    try:
        json.dumps(Serialization.to_dict(dag), ensure_ascii=False).encode("utf-8")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def load(folder: Path) -> dict:
    """The report of one DAG folder."""
    # Each folder has its own helper module: forget the previous folder's.
    for name in [name for name in sys.modules if "_mlflow_" in name]:
        del sys.modules[name]
    bag = dag_bag(folder)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    report = {str(path): {"errors": {}, "dags": {}} for path in sorted(folder.glob("*.py"))}
    for file, error in bag.import_errors.items():
        report[str(folder / Path(file).name)]["errors"][file] = str(error)
    for dag_id, dag in bag.dags.items():
        report[dag.fileloc]["dags"][dag_id] = {
            "operators": sorted({type(t).__name__ for t in dag.tasks}),
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md,
            "owner": dag.default_args.get("owner"),
            "user_defined_macros": sorted(dag.user_defined_macros or {}),
            "serialization_error": serialized(dag),
            "render_run_id": RUN_ID,  # the run id of the rendered values, and its run_after
            "render_run_after": str(RUN_AFTER),
            "params": {key: dag.params.get_param(key).dump() for key in dag.params},
            "tasks": {task.task_id: task_report(dag, task) for task in dag.tasks},
        }
    return report


report = {"versions": VERSIONS, "files": {}}
for folder in sys.argv[2:]:
    report["files"] |= load(Path(folder).resolve())
with open(sys.argv[1], "w") as out:
    json.dump(report, out, default=str)
