"""What every `kedro run` logs to MLflow besides kedro-mlflow's parameters and tags.

kedro-mlflow starts (or, given ``MLFLOW_RUN_ID``, resumes) the run and logs the
parameters. These hooks add what it cannot do across pods:

- ``MlflowDatasetHooks`` logs the datasets whose catalog entry says so in
  ``metadata.mlflow``: ``metrics`` (a dict of numbers) as the run's metrics, and
  ``model: <flavor>`` as a model of that MLflow flavor. The datasets themselves stay
  as declared, persisted where the next task reads them.
- ``MlflowRunHooks``, in a task of a DAG run (``AIRFLOW_RUN_ID`` is set), finds the
  DAG run's MLflow run by its tags and hands its id to kedro-mlflow, tags it with
  the folder the run's data goes to (``data_folder``); and, when the
  DAG gives ``MLFLOW_IAP_AUDIENCE``, signs the requests to a server behind
  Identity-Aware Proxy: the mlflow package sends ``MLFLOW_TRACKING_TOKEN`` as a
  bearer token, which this keeps a fresh Google ID token of the pod's service account.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl

from .mlflow_runs import IdToken, from_environment, run_of
from .plan import dag_run_root

# The MLflow run's tag naming the folder its DAG run's data went to.
DATA_FOLDER_TAG = "data_folder"


class MlflowDatasetHooks:
    def __init__(self) -> None:
        self.logged: dict[str, dict[str, Any]] = {}

    @hook_impl
    def after_catalog_created(self, conf_catalog: dict[str, Any]) -> None:
        self.logged = {
            name: entry["metadata"]["mlflow"]
            for name, entry in conf_catalog.items()
            if isinstance(entry, dict) and "mlflow" in (entry.get("metadata") or {})
        }

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        how = self.logged.get(dataset_name)
        if how is None:
            return
        import mlflow  # noqa: PLC0415 (kedro-mlflow has imported it by now)

        if mlflow.active_run() is None:
            return
        if how.get("metrics"):
            mlflow.log_metrics(data)
        if flavor := how.get("model"):
            # uv makes environments without pip, which the model's conda.yaml names;
            # mlflow warns of it on every model. The version does not matter here.
            environment = logging.getLogger("mlflow.utils.environment")
            level = environment.level
            environment.setLevel(logging.ERROR)
            try:
                importlib.import_module(flavor).log_model(data, name=dataset_name)
            finally:
                environment.setLevel(level)


class MlflowRunHooks:
    def __init__(self) -> None:
        self.id_token: IdToken | None = None
        self.data_folder: str | None = None

    def refresh(self) -> None:
        audience = os.environ.get("MLFLOW_IAP_AUDIENCE")
        if not audience:
            return
        if self.id_token is None:
            self.id_token = IdToken(audience)
        os.environ["MLFLOW_TRACKING_TOKEN"] = self.id_token.token()

    # First: kedro-mlflow reaches the server as soon as the context exists.
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        self.refresh()
        if "AIRFLOW_RUN_ID" not in os.environ:
            return
        if "MLFLOW_RUN_ID" not in os.environ:
            os.environ["MLFLOW_RUN_ID"] = run_of(**from_environment())
        data_root = context.config_loader["globals"].get("data_root")
        self.data_folder = dag_run_root(str(data_root)) if data_root else None

    @hook_impl(trylast=True)  # once kedro-mlflow has started (or resumed) the run
    def before_pipeline_run(self) -> None:
        if self.data_folder:
            importlib.import_module("mlflow").set_tag(DATA_FOLDER_TAG, self.data_folder)

    @hook_impl(tryfirst=True)
    def before_node_run(self) -> None:  # tokens last an hour; nodes may run long
        self.refresh()

    @hook_impl(tryfirst=True)
    def before_dataset_saved(self) -> None:
        self.refresh()
