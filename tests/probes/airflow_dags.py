"""Load DAG folders in a real Airflow and print what it made of them, as JSON.

Runs with the Python of the baked project's Airflow environment (deploy/airflow),
never the Kedro one: `python airflow_dags.py <report.json> <dag folder>...`
(Airflow logs to standard output, hence the file). Each folder loads as Airflow loads
its DAG folder, a bundle on ``sys.path``, so the DAGs import the helper module beside
them. The report has, per Python file of each folder, its import errors and its DAGs;
per task, what its operator holds, and its templated values rendered by the DAG's own
Jinja environment against a stand-in task instance (see ``StandInTaskInstance``).
"""

import json
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag

RUN_ID = "manual__2026-11-26T08:30:12+00:00"


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
    """The cluster's hook, as far as building a pod with the XCom sidecar asks it:
    the provider's defaults (the real one asks GKE, or a connection, for its cluster)."""

    def get_xcom_sidecar_container_image(self):
        return None

    def get_xcom_sidecar_container_resources(self):
        return None

    def get_xcom_sidecar_container_security_context(self):
        return None


def pod(operator) -> dict:
    """The pod the operator would ask Kubernetes for, built by the provider's code."""
    if operator.do_xcom_push:
        operator.__dict__["hook"] = StandInHook()  # over the cached property
    spec = operator.build_pod_request_obj(dry_run=True).to_dict()
    container = spec["spec"]["containers"][0]
    return {
        "name": spec["metadata"]["name"],
        "labels": spec["metadata"]["labels"],
        "annotations": spec["metadata"]["annotations"],
        "service_account": spec["spec"]["service_account_name"],
        "namespace": spec["metadata"]["namespace"],
        "image": container["image"],
        "command": container["command"],
        "resources": container["resources"],
        "env": {var["name"]: var["value"] for var in container["env"] or []},
        "containers": [c["name"] for c in spec["spec"]["containers"]],
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
        "env": {},
    }
    if hasattr(task, "build_pod_request_obj"):
        report["pod"] = pod(task)
        report["env"] = report["pod"]["env"]
    elif report["operator"] == "BashOperator":
        report |= {"bash_command": task.bash_command, "cwd": task.cwd, "append_env": task.append_env}
        report["env"] = dict(task.env or {})
    elif report["operator"] == "PythonOperator":
        function = task.python_callable
        report["python_callable"] = f"{function.__module__}.{function.__qualname__}"
        report["op_kwargs"] = dict(task.op_kwargs)
        report["rendered_op_kwargs"] = render(dag, task, report["op_kwargs"])
    report["rendered_env"] = render(dag, task, report["env"])
    return report


def render(dag, task, values: dict) -> dict:
    """``values`` rendered as the task's run would render them (strict: an unknown name fails)."""
    context = {"ti": StandInTaskInstance(dag, task), "run_id": RUN_ID, "dag": dag}
    return task.render_template(values, context, jinja_env=dag.get_template_env())


def load(folder: Path) -> dict:
    """The report of one DAG folder, loaded as its own bundle."""
    # Each folder has its own helper module: forget the previous folder's.
    for name in [name for name in sys.modules if name.endswith("_mlflow")]:
        del sys.modules[name]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder)
    sys.path.remove(str(folder))
    report = {str(path): {"errors": {}, "dags": {}} for path in sorted(folder.glob("*.py"))}
    for file, error in bag.import_errors.items():
        report[str(folder / file)]["errors"][file] = str(error)
    for dag_id, dag in bag.dags.items():
        report[dag.fileloc]["dags"][dag_id] = {
            "operators": sorted({type(t).__name__ for t in dag.tasks}),
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md,
            "user_defined_macros": sorted(dag.user_defined_macros or {}),
            "render_run_id": RUN_ID,  # the run id of the rendered values
            "tasks": {task.task_id: task_report(dag, task) for task in dag.tasks},
        }
    return report


report = {}
for folder in sys.argv[2:]:
    report |= load(Path(folder).resolve())
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
