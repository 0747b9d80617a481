"""Print the task plans the baked project's hooks give `kedro airflow create`, as JSON.

Runs with the Python of the baked project, in it: `python kedro_plans.py <plans.json> <env>...`,
one Kedro session per environment; the JSON maps each environment to its plans by pipeline.
Each task also gets `selected`: the nodes Kedro's own filter picks for its `kedro run`
arguments. A plan's `start` and `end` are the MLflow tasks around it (null without MLflow).
"""

import dataclasses
import json
import sys
from pathlib import Path

from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

bootstrap_project(Path.cwd())


def selected(pipeline, selection: list[str]) -> list[str]:
    """The nodes `kedro run --pipelines <p> <selection>` runs (Kedro's session filters so)."""
    option, value = selection
    chosen = {"--tags": "tags", "--nodes": "node_names"}[option]
    return sorted(node.name for node in pipeline.filter(**{chosen: [value]}).nodes)


def plans_of(env: str) -> dict[str, dict]:
    with KedroSession.create(env=env) as session:
        config = session.load_context().config_loader["airflow"]
        plans = {name: dataclasses.asdict(config[name]["plan"]) for name in pipelines}
    for name, plan in plans.items():
        for task in plan["tasks"]:
            task["selected"] = selected(pipelines[name], task["selection"])
    return plans


result = {env: plans_of(env) for env in sys.argv[2:]}
with open(sys.argv[1], "w") as out:
    json.dump(result, out)
