"""Load DAG files in a real Airflow and print what it made of them, as JSON.

Runs with the Python of the baked project's Airflow environment (deploy/airflow),
never the Kedro one: `python airflow_dags.py <report.json> <dag file>...`
(Airflow logs to standard output, hence the file).
"""

import json
import sys

from airflow.dag_processing.dagbag import DagBag


def pod(operator) -> dict:
    """The pod the operator would ask Kubernetes for, built by the provider's code."""
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
    }


report = {}
for path in sys.argv[2:]:
    bag = DagBag(dag_folder=path)
    dags = {
        dag_id: {
            "operators": sorted({type(t).__name__ for t in dag.tasks}),
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md,
            "tasks": {
                task.task_id: {"upstream": sorted(task.upstream_task_ids), "pod": pod(task)} for task in dag.tasks
            },
        }
        for dag_id, dag in bag.dags.items()
    }
    report[path] = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
