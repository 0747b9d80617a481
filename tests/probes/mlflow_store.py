"""Dump an MLflow store's runs, and the parameters a Kedro pipeline uses, as JSON.

Runs with the baked project's Python, in it:
`python mlflow_store.py <out.json> <tracking uri> <experiment> <pipeline>`.
"""

import json
import sys
from pathlib import Path

import mlflow
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

out, uri, experiment, pipeline = sys.argv[1:]
client = mlflow.MlflowClient(tracking_uri=uri)
found = client.get_experiment_by_name(experiment)
runs = client.search_runs([found.experiment_id]) if found else []
models = client.search_logged_models([found.experiment_id]) if found else []

bootstrap_project(Path.cwd())
with KedroSession.create() as session:
    parameters = session.load_context().params
used = sorted({name.removeprefix("params:") for name in pipelines[pipeline].inputs() if name.startswith("params:")})

with open(out, "w") as file:
    json.dump(
        {
            "runs": [
                {
                    "run_id": run.info.run_id,
                    "status": run.info.status,
                    "end_time": run.info.end_time,
                    "tags": run.data.tags,
                    "params": run.data.params,
                    "metrics": run.data.metrics,
                    "models": [model.name for model in models if model.source_run_id == run.info.run_id],
                }
                for run in runs
            ],
            "parameters": {name: parameters[name] for name in used},
        },
        file,
        default=str,
    )
