"""Start (or find) the MLflow run of the DAG run and hand its id to Airflow."""

import os

from ...mlflow_runs import start_run, write_xcom


def start_mlflow_run(settings: dict) -> None:
    """Write the MLflow run id of this DAG run to ``settings["xcom_path"]``.

    The DAG gives the pod MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME,
    AIRFLOW_DAG_ID, AIRFLOW_RUN_ID and, behind IAP, MLFLOW_IAP_AUDIENCE.
    """
    run_id = start_run(
        tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
        experiment=os.environ["MLFLOW_EXPERIMENT_NAME"],
        dag_id=os.environ["AIRFLOW_DAG_ID"],
        airflow_run_id=os.environ["AIRFLOW_RUN_ID"],
        audience=os.environ.get("MLFLOW_IAP_AUDIENCE") or None,
    )
    write_xcom(run_id, settings["xcom_path"])
