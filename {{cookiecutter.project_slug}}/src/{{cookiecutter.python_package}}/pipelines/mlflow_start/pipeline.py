"""The `mlflow_start` pipeline: the first task of a DAG with `mlflow_start: pod`.

It is not part of `__default__`: only the DAG runs it, as
`kedro run --pipelines mlflow_start`, in a pod with the XCom sidecar.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import start_mlflow_run


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=start_mlflow_run,
                inputs="params:mlflow_start",
                outputs=None,
                name="start_mlflow_run_node",
            )
        ]
    )
