"""Print the task plans the baked project's hooks give `kedro airflow create`, as JSON.

Runs with the Python of the baked project, in it: `python kedro_plans.py <plans.json> <env>...`,
one Kedro session per environment; the JSON maps each environment to its pipelines, each
with its `plan` and its checked `settings` (the template's `settings`). A plan's `start`
and `end` are the MLflow tasks around it (null without MLflow). Every task also gets
`selected`: the nodes that `kedro run` with the task's own command would run, its
arguments parsed by Kedro's own `run` command and the pipelines filtered as Kedro's
session filters them, and `selected_env`, the environment that command runs in.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline

# As `kedro airflow create` runs for the DAGs: planning logs no MLflow run.
os.environ["KEDRO_MLFLOW"] = "off"
bootstrap_project(Path.cwd())
KEDRO_RUN = ["python", "-m", "kedro", "run"]


def selected(command: list[str]) -> tuple[list[str], str]:
    """The nodes `kedro run` runs for ``command``, and its environment."""
    assert list(command[:4]) == KEDRO_RUN, command
    options = kedro_run.make_context("run", list(command[4:])).params
    combined = sum((pipelines[name] for name in options["pipelines"]), Pipeline([]))
    try:
        chosen = combined.filter(
            tags=options["tags"],
            from_nodes=options["from_nodes"],
            to_nodes=options["to_nodes"],
            node_names=options["node_names"],
            from_inputs=options["from_inputs"],
            to_outputs=options["to_outputs"],
            node_namespaces=options["namespaces"],
        )
    except ValueError:  # Kedro refuses a filter that leaves no node
        return [], options["env"]
    return sorted(node.name for node in chosen.nodes), options["env"]


def plans_of(env: str) -> dict[str, dict]:
    with KedroSession.create(env=env) as session:
        config = session.load_context().config_loader["airflow"]
        names = [name for name in pipelines if name != "start_mlflow_run"]  # the DAGs' own
        values = {name: config[name] for name in names}
    result = {}
    for name, value in values.items():
        plan = dataclasses.asdict(value["plan"])
        for task in plan["tasks"]:
            task["selected"], task["selected_env"] = selected(task["command"])
        result[name] = {"plan": plan, "settings": vars(value["settings"]), "helper": value["helper"]}
    return result


result = {env: plans_of(env) for env in sys.argv[2:]}
with open(sys.argv[1], "w") as out:
    json.dump(result, out, default=str)
