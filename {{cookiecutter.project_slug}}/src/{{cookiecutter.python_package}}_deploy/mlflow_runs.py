"""The one MLflow run of an Airflow DAG run: start it, find it, end it.

The run is known by its tags, the DAG id and the Airflow run id, so that any task
of the DAG run finds it and a retried start never makes a second one. The DAG's
first task starts it and its last ends it, on the Airflow worker
(`mlflow_tasks_on: worker`: ``start_dag_run`` and ``end_dag_run``) or in pods
(`pod`: the ``start_mlflow_run`` pipeline, and ``python -m <this module> end``);
every task between finds it and logs into it (``mlflow_hooks.MlflowRunHooks``).

This module talks to MLflow's REST API with ``requests`` alone, and to Google for an
ID token when the server sits behind Identity-Aware Proxy, which is all that Cloud
Composer's Airflow has: no Kedro, no mlflow package. `nox -s generate` copies it
beside the DAGs as ``<package>_mlflow_<hash of this file>``, the name the DAGs of
that generation import.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

# Tags that tie an MLflow run to the Airflow DAG run it tracks.
DAG_ID_TAG = "airflow_dag_id"
RUN_ID_TAG = "airflow_run_id"
FAILED_STATES = {"failed", "upstream_failed"}
TIMEOUT = 30  # seconds for each request: a start must fail, never hang
logger = logging.getLogger(__name__)


class MlflowError(RuntimeError):
    """MLflow answered with an error."""


class IdToken(requests.auth.AuthBase):
    """Sign requests with a Google ID token for ``audience`` (IAP's OAuth client id).

    The token comes from Application Default Credentials: a pod's Workload Identity
    or Composer's service account, through the metadata server.
    """

    def __init__(self, audience: str):
        from google.auth.transport.requests import Request  # noqa: PLC0415
        from google.oauth2.id_token import fetch_id_token_credentials  # noqa: PLC0415

        self.request = Request()
        self.credentials = fetch_id_token_credentials(audience, request=self.request)

    def token(self) -> str:
        if not self.credentials.valid:  # expires after an hour
            self.credentials.refresh(self.request)
        return self.credentials.token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


class Tracking:
    """MLflow's REST API at ``uri``, behind IAP when ``audience`` is given."""

    def __init__(self, uri: str, audience: str | None = None):
        self.uri = uri.rstrip("/")
        self.session = requests.Session()
        # Retry what cannot have changed anything: refused connections, and GETs
        # answered 502-504. A POST that timed out at a gateway may have created a
        # run: the task fails instead, and its retry finds that run by its tags.
        retry = Retry(
            total=None,
            connect=4,
            read=0,
            status=4,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=1,
        )
        self.session.mount(self.uri, HTTPAdapter(max_retries=retry))
        if audience:
            self.session.auth = IdToken(audience)

    def call(self, method: str, endpoint: str, **body: Any) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}"
        send = {"params": body} if method == "GET" else {"json": body}
        response = self.session.request(method, url, timeout=TIMEOUT, **send)
        if not response.ok:
            raise MlflowError(
                f"MLflow at {self.uri}: {method} {endpoint} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The id of the experiment ``name``; if there is none, a new one's, or None."""
        try:
            return self.call("GET", "experiments/get-by-name", experiment_name=name)[
                "experiment"
            ]["experiment_id"]
        except MlflowError as error:
            if "RESOURCE_DOES_NOT_EXIST" not in str(error):
                raise
        if not create:
            return None
        try:
            return self.call("POST", "experiments/create", name=name)["experiment_id"]
        except MlflowError as error:  # another DAG run created it meanwhile
            if "RESOURCE_ALREADY_EXISTS" not in str(error):
                raise
            return self.experiment_id(name)

    def find_run(
        self, experiment_id: str, dag_id: str, airflow_run_id: str
    ) -> dict[str, Any] | None:
        """The MLflow run of the DAG run, by its tags (the first, should there be
        two), as MLflow's REST API gives it; None if there is none."""
        if "'" in dag_id + airflow_run_id:
            raise ValueError(f"Cannot search MLflow for {dag_id!r} {airflow_run_id!r}")
        runs = self.call(
            "POST",
            "runs/search",
            experiment_ids=[experiment_id],
            filter=f"tags.{DAG_ID_TAG} = '{dag_id}' and tags.{RUN_ID_TAG} = '{airflow_run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        ).get("runs", [])
        return runs[0] if runs else None


def run_of(
    tracking_uri: str,
    experiment: str,
    dag_id: str,
    airflow_run_id: str,
    audience: str | None = None,
) -> str:
    """The id of the MLflow run of this DAG run; raise if the DAG run has none."""
    tracking = Tracking(tracking_uri, audience)
    experiment_id = tracking.experiment_id(experiment, create=False)
    found = experiment_id and tracking.find_run(experiment_id, dag_id, airflow_run_id)
    if not found:
        raise MlflowError(
            f"MLflow at {tracking.uri} has no run of DAG run {airflow_run_id} of "
            f"{dag_id} in experiment {experiment!r}: the DAG's first task starts it, "
            "so clear that task as well."
        )
    return found["info"]["run_id"]


def start_run(
    tracking_uri: str,
    experiment: str,
    dag_id: str,
    airflow_run_id: str,
    audience: str | None = None,
) -> str:
    """Return the id of the MLflow run of this DAG run, starting it if none exists.

    The run is found by its tags, so a retried start never makes a second one. It is
    named after the Airflow run id, as the tasks name it too (see mlflow.yml).
    """
    tracking = Tracking(tracking_uri, audience)
    experiment_id = tracking.experiment_id(experiment)
    if found := tracking.find_run(experiment_id, dag_id, airflow_run_id):
        run_id = found["info"]["run_id"]
        logger.info(
            "MLflow run %s of %s %s exists: using it", run_id, dag_id, airflow_run_id
        )
        return run_id
    tags = {DAG_ID_TAG: dag_id, RUN_ID_TAG: airflow_run_id}
    run = tracking.call(
        "POST",
        "runs/create",
        experiment_id=experiment_id,
        run_name=airflow_run_id,
        start_time=int(time.time() * 1000),
        tags=[{"key": key, "value": value} for key, value in tags.items()],
    )["run"]
    run_id = run["info"]["run_id"]
    logger.info("Started MLflow run %s in experiment %r", run_id, experiment)
    return run_id


def end_run(
    tracking_uri: str, run_id: str, status: str, audience: str | None = None
) -> None:
    """Mark the run ``status`` (FINISHED or FAILED) and stamp its end time."""
    if status not in {"FINISHED", "FAILED"}:
        raise ValueError(
            f"MLflow run status must be FINISHED or FAILED, not {status!r}"
        )
    Tracking(tracking_uri, audience).call(
        "POST",
        "runs/update",
        run_id=run_id,
        status=status,
        end_time=int(time.time() * 1000),
    )
    logger.info("MLflow run %s is %s", run_id, status)


def dag_run_status(ti: Any) -> str:
    """FAILED if a task of ``ti``'s DAG run, other than ``ti``, failed; else FINISHED.

    ``ti`` is the Airflow task instance of the last task (a teardown that runs
    whatever happened upstream), which asks Airflow for its siblings' states.
    """
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])[ti.run_id]
    failed = {task for task, state in states.items() if state in FAILED_STATES}
    return "FAILED" if failed - {ti.task_id} else "FINISHED"


def start_dag_run(
    tracking_uri: str, experiment: str, audience: str | None, ti: Any
) -> str:
    """The first task on the Airflow worker: start the DAG run's MLflow run."""
    return start_run(tracking_uri, experiment, ti.dag_id, ti.run_id, audience)


def end_dag_run(
    tracking_uri: str, experiment: str, audience: str | None, ti: Any
) -> None:
    """The last task on the Airflow worker: end the run as the DAG run went."""
    run_id = run_of(tracking_uri, experiment, ti.dag_id, ti.run_id, audience)
    end_run(tracking_uri, run_id, dag_run_status(ti), audience)


def from_environment() -> dict[str, Any]:
    """What a DAG gives its pods: the server, the experiment and the DAG run."""
    return {
        "tracking_uri": os.environ["MLFLOW_TRACKING_URI"],
        "experiment": os.environ["MLFLOW_EXPERIMENT_NAME"],
        "dag_id": os.environ["AIRFLOW_DAG_ID"],
        "airflow_run_id": os.environ["AIRFLOW_RUN_ID"],
        "audience": os.environ.get("MLFLOW_IAP_AUDIENCE") or None,
    }


def start_from_environment() -> str:
    """The node of the ``start_mlflow_run`` pipeline: the first task in a pod."""
    return start_run(**from_environment())


def main(argv: list[str]) -> None:
    """`python -m <package>_deploy.mlflow_runs end`: the last task in a pod, from the
    environment the DAG gives it (see ``from_environment``, and MLFLOW_RUN_STATUS)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv != ["end"]:
        sys.exit(f"usage: python -m {__spec__.name} end")
    run = from_environment()
    run_id = run_of(**run)
    end_run(
        run["tracking_uri"], run_id, os.environ["MLFLOW_RUN_STATUS"], run["audience"]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
