"""The one MLflow run of a DAG run, started, found and ended against a real MLflow server (slow).

The run is known by its tags, the DAG id and the Airflow run id. The DAG's first task
starts it either in a pod (`mlflow_tasks_on: pod`: `kedro run --pipelines
start_mlflow_run`) or on Airflow's worker (`worker`: the module that `nox -s generate`
ships beside the DAGs, in Airflow's own environment, which has no mlflow package);
every task's pod finds it (the project's MlflowRunHooks) and kedro-mlflow logs into
it; the last task ends it. Behind Identity-Aware Proxy every request carries a
Google ID token: a gateway of the test's own, in front of the real server, checks it
and answers for Google's token endpoint.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from components import mlflow_server
from conftest import bake, clean_env, run, uv
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

pytestmark = pytest.mark.slow

PROBES = Path(__file__).parent / "probes"
DAG_ID = "spaceflights-__default__-gcp"
SCHEDULED = "scheduled__2026-11-26T00:00:00+00:00"  # Airflow run ids, as Airflow writes them
MANUAL = "manual__2026-11-26T08:30:12.345678+00:00"
AUDIENCE = "123456789012-iap0abcdef.apps.googleusercontent.com"  # IAP's OAuth client id
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TASK = ("--pipelines", "__default__", "--nodes", "preprocess_companies_node")
# The experiment of the project's mlflow.yml, which kedro-mlflow logs a task's run in.
EXPERIMENT = "spaceflights"
# The settings the tests give, never inherited from the machine that runs them.
SETTINGS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_RUN_NAME",
    "MLFLOW_IAP_AUDIENCE",
    "AIRFLOW_DAG_ID",
    "AIRFLOW_RUN_ID",
    "KEDRO_MLFLOW",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = bake(tmp_path_factory.mktemp("mlflow"))
    run(uv(), "sync", "--locked", cwd=project)
    return project


@pytest.fixture(scope="module")
def server(project, tmp_path_factory) -> Iterator[str]:
    """A real MLflow server, the bake's own mlflow, on SQLite."""
    with mlflow_server(project / ".venv/bin/mlflow", tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="module")
def airflow_python(project, tmp_path_factory) -> Path:
    """Airflow's own environment, from the bake's lock beside its deployment layer."""
    venv = tmp_path_factory.mktemp("airflow") / "venv"
    lock = project / "src/spaceflights_deploy/airflow"
    run(uv(), "sync", "--locked", cwd=lock, env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    return venv / "bin/python"


@pytest.fixture(scope="module")
def shipped(project, tmp_path_factory) -> Path:
    """mlflow_runs.py as `nox -s generate` ships it: beside the DAGs, under a name of its own."""
    dags = tmp_path_factory.mktemp("dags")
    return Path(shutil.copy(project / "src/spaceflights_deploy/mlflow_runs.py", dags / "spaceflights_mlflow_1.py"))


def env(**settings: str) -> dict[str, str]:
    """This machine's environment with no MLflow or Google settings but ``settings``."""
    return {key: value for key, value in clean_env().items() if key not in SETTINGS} | settings


def dag_run(tracking_uri: str, experiment: str, airflow_run_id: str, dag_id: str = DAG_ID) -> dict[str, str]:
    """What the DAG gives every task of a DAG run (RUN_ENV in the DAG template)."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "AIRFLOW_DAG_ID": dag_id,
        "AIRFLOW_RUN_ID": airflow_run_id,
    }


def start_in_pod(project: Path, **settings: str) -> None:
    """Run the DAG's first task as its pod does: tracking off, for it starts the run."""
    kedro_run = ("run", "--pipelines", "start_mlflow_run")
    run(project / ".venv/bin/kedro", *kedro_run, cwd=project, env=env(**settings, KEDRO_MLFLOW="off"))


def task_in_pod(project: Path, **settings: str) -> str:
    """Run one task of the DAG run as its pod does; its output."""
    return run(project / ".venv/bin/kedro", "run", *TASK, cwd=project, env=env(**settings))


def call_in_airflow(airflow_python: Path, module: Path, folder: Path, *calls: tuple[str, dict], **settings) -> list:
    """Call ``module``'s functions in Airflow's Python, as the DAG's PythonOperators do; what they returned."""
    (folder / "calls.json").write_text(json.dumps(calls))
    run(
        airflow_python,
        PROBES / "mlflow_runs.py",
        folder / "report.json",
        module,
        folder / "calls.json",
        cwd=folder,
        env=env(**settings),
    )
    report = json.loads((folder / "report.json").read_text())
    assert report["mlflow_imported"] is False
    return report["returned"]


def mlflow_api(server: str, method: str, endpoint: str, **body) -> dict:
    """The test's own call to MLflow's REST API."""
    send = {"params": body} if method == "GET" else {"json": body}
    response = requests.request(method, f"{server}/api/2.0/mlflow/{endpoint}", timeout=30, **send)
    response.raise_for_status()
    return response.json()


def runs_of(server: str, experiment: str, airflow_run_id: str) -> list[dict]:
    """The runs of ``experiment`` tagged with the Airflow run id."""
    found = mlflow_api(server, "GET", "experiments/get-by-name", experiment_name=experiment)["experiment"]
    tagged = f"tags.airflow_run_id = '{airflow_run_id}'"
    runs = mlflow_api(server, "POST", "runs/search", experiment_ids=[found["experiment_id"]], filter=tagged)
    return runs.get("runs", [])


def tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


# In pods: `kedro run --pipelines start_mlflow_run`, then the tasks, then `mlflow_runs end`.


@pytest.fixture(scope="module")
def pod_start(project, server) -> dict:
    """The MLflow run that a scheduled DAG run's first pod started."""
    start_in_pod(project, **dag_run(server, EXPERIMENT, SCHEDULED))
    (started,) = runs_of(server, EXPERIMENT, SCHEDULED)
    return started


def test_a_pod_starts_the_dag_runs_mlflow_run_tagged_with_the_dag_run(pod_start):
    assert (pod_start["info"]["status"], pod_start["info"]["run_name"]) == ("RUNNING", SCHEDULED)
    assert tags(pod_start)["airflow_dag_id"] == DAG_ID
    assert tags(pod_start)["airflow_run_id"] == SCHEDULED


def test_a_retried_start_finds_the_run_and_another_dag_run_gets_its_own(project, server, pod_start):
    start_in_pod(project, **dag_run(server, EXPERIMENT, SCHEDULED))
    start_in_pod(project, **dag_run(server, EXPERIMENT, MANUAL))

    assert [found["info"]["run_id"] for found in runs_of(server, EXPERIMENT, SCHEDULED)] == [
        pod_start["info"]["run_id"]
    ]
    (other,) = runs_of(server, EXPERIMENT, MANUAL)
    assert other["info"]["run_id"] != pod_start["info"]["run_id"]


def test_a_task_pod_finds_the_dag_runs_run_and_logs_into_it(project, server, pod_start):
    """No run id reaches the pod: it finds the run by the DAG run's tags."""
    task_in_pod(project, **dag_run(server, EXPERIMENT, SCHEDULED))

    (tracked,) = runs_of(server, EXPERIMENT, SCHEDULED)  # the same one run, no second
    assert tracked["info"]["run_id"] == pod_start["info"]["run_id"]
    assert "preprocess_companies_node" in tags(tracked)["node_names"]


def test_a_task_of_a_dag_run_without_a_run_fails_naming_the_start_task(project, server):
    result = subprocess.run(
        [project / ".venv/bin/kedro", "run", *TASK],
        cwd=project,
        env=env(**dag_run(server, EXPERIMENT, "manual__never-started")),
        capture_output=True,
        text=True,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "has no run of DAG run manual__never-started" in output
    assert "the DAG's first task starts it" in output


def test_the_last_pod_ends_the_run_as_the_dag_run_went(project, server):
    ends = "manual__ends"
    start_in_pod(project, **dag_run(server, EXPERIMENT, ends))
    (started,) = runs_of(server, EXPERIMENT, ends)

    ending = env(**dag_run(server, EXPERIMENT, ends), MLFLOW_RUN_STATUS="FINISHED")
    run(project / ".venv/bin/python", "-m", "spaceflights_deploy.mlflow_runs", "end", cwd=project, env=ending)

    ended = mlflow_api(server, "GET", "runs/get", run_id=started["info"]["run_id"])["run"]["info"]
    assert ended["status"] == "FINISHED"
    assert int(ended["end_time"]) >= int(ended["start_time"])


def test_with_mlflow_off_a_task_tracks_nothing(project):
    """KEDRO_MLFLOW=off, as a DAG with `mlflow_tasks_on: off` gives its tasks: no run, no store
    (without it, this run would make mlflow.db here, its default store)."""
    (project / "mlflow.db").unlink(missing_ok=True)
    output = run(project / ".venv/bin/kedro", "run", *TASK, cwd=project, env=env(KEDRO_MLFLOW="off"))
    assert "Pipeline execution completed successfully" in output
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()


# On the Airflow worker: the shipped module, in Airflow's environment.


def test_airflow_has_no_mlflow_package(airflow_python):
    result = subprocess.run(
        [airflow_python, "-c", "import mlflow"], check=False, capture_output=True, text=True, env=env()
    )
    assert result.returncode == 1
    assert "No module named 'mlflow'" in result.stderr


def test_airflow_starts_the_run_once_finds_it_and_ends_it_failed(airflow_python, shipped, server, tmp_path):
    start = {"tracking_uri": server, "experiment": "airflow", "dag_id": DAG_ID, "airflow_run_id": SCHEDULED}
    first, again, found = call_in_airflow(
        airflow_python, shipped, tmp_path, ("start_run", start), ("start_run", start), ("run_of", start)
    )

    assert again == first == found
    (started,) = runs_of(server, "airflow", SCHEDULED)
    assert (started["info"]["run_id"], started["info"]["status"]) == (first, "RUNNING")
    assert tags(started)["airflow_dag_id"] == DAG_ID
    assert tags(started)["airflow_run_id"] == SCHEDULED

    end = {"tracking_uri": server, "run_id": first, "status": "FAILED"}
    call_in_airflow(airflow_python, shipped, tmp_path, ("end_run", end))

    ended = mlflow_api(server, "GET", "runs/get", run_id=first)["run"]["info"]
    assert ended["status"] == "FAILED"
    assert int(ended["end_time"]) >= int(ended["start_time"])


# Behind Identity-Aware Proxy: a Google ID token on every request.


class Request(NamedTuple):
    method: str
    path: str
    authorization: str | None
    user_agent: str
    body: str


class Gateway(ThreadingHTTPServer):
    """Identity-Aware Proxy in front of a real MLflow ``upstream``, as far as a test can
    tell: it records every request on 127.0.0.1 and passes MLflow's on; and Google's
    token endpoint (/token) for a service account whose key it writes to ``key_file``."""

    email = "composer@my-gcp-project.iam.gserviceaccount.com"

    def __init__(self, upstream: str, key_file: Path) -> None:
        super().__init__(("127.0.0.1", 0), Answer)
        self.url, self.upstream = f"http://127.0.0.1:{self.server_address[1]}", upstream
        self.requests: list[Request] = []
        self.id_token = jwt({"alg": "RS256", "typ": "JWT"}, {"aud": AUDIENCE, "exp": int(time.time()) + 3600})
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key = {"type": "service_account", "project_id": "my-gcp-project", "private_key_id": "1"}
        key |= {"private_key": pem.decode(), "client_email": self.email, "token_uri": f"{self.url}/token"}
        self.key_file = key_file
        key_file.write_text(json.dumps(key))

    def to_mlflow(self) -> list[Request]:
        return [request for request in self.requests if request.path.startswith("/api/")]

    def for_tokens(self) -> list[Request]:
        return [request for request in self.requests if request.path == "/token"]


class Answer(BaseHTTPRequestHandler):
    server: Gateway

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        seen = Request(self.command, url.path, self.headers["Authorization"], self.headers["User-Agent"], body.decode())
        self.server.requests.append(seen)
        if url.path == "/token":
            status, kind, data = 200, "application/json", json.dumps({"id_token": self.server.id_token}).encode()
        else:
            passed = requests.request(
                self.command,
                f"{self.server.upstream}{self.path}",
                data=body,
                headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
                timeout=30,
            )
            status, kind, data = passed.status_code, passed.headers.get("Content-Type", ""), passed.content
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt(header: dict, claims: dict) -> str:
    """A JWT that google-auth reads (it does not check an ID token's signature)."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(b'not-checked')}"


@pytest.fixture
def iap(server, tmp_path) -> Iterator[Gateway]:
    with Gateway(server, tmp_path / "service-account.json") as gateway:
        threading.Thread(target=gateway.serve_forever, daemon=True).start()
        yield gateway
        gateway.shutdown()


def assert_signed(iap: Gateway) -> None:
    """Every MLflow request carried the ID token, which the service account asked for IAP's audience."""
    assert iap.to_mlflow()
    bearer = f"Bearer {iap.id_token}"
    assert [(r.user_agent, r.path) for r in iap.to_mlflow() if r.authorization != bearer] == []
    assert iap.for_tokens()
    for request in iap.for_tokens():
        grant = parse_qs(request.body)
        assert grant["grant_type"] == [JWT_BEARER]
        (assertion,) = grant["assertion"]
        signed, signature = assertion.rsplit(".", 1)
        iap.private_key.public_key().verify(unb64(signature), signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(unb64(signed.split(".")[1]))
        assert (claims["iss"], claims["target_audience"]) == (iap.email, AUDIENCE)


def assert_unsigned(iap: Gateway) -> None:
    assert iap.to_mlflow()
    assert [(r.user_agent, r.path) for r in iap.to_mlflow() if r.authorization is not None] == []
    assert iap.for_tokens() == []


@pytest.mark.parametrize("audience", [AUDIENCE, None])
def test_airflow_signs_its_requests_behind_iap_only(airflow_python, shipped, iap, tmp_path, audience):
    airflow_run_id = f"manual__airflow-{audience is not None}"
    start = {"tracking_uri": iap.url, "experiment": "airflow-iap", "dag_id": DAG_ID, "airflow_run_id": airflow_run_id}
    call = ("start_run", start | {"audience": audience})

    (run_id,) = call_in_airflow(
        airflow_python, shipped, tmp_path, call, GOOGLE_APPLICATION_CREDENTIALS=str(iap.key_file)
    )

    assert [found["info"]["run_id"] for found in runs_of(iap.upstream, "airflow-iap", airflow_run_id)] == [run_id]
    paths = [request.path.removeprefix("/api/2.0/mlflow/") for request in iap.to_mlflow()]
    assert paths[-2:] == ["runs/search", "runs/create"]
    if audience:
        assert_signed(iap)
        assert len(iap.for_tokens()) == 1  # one token for all of a start's requests
    else:
        assert_unsigned(iap)


@pytest.mark.parametrize("audience", [AUDIENCE, None])
def test_a_task_pod_signs_its_requests_behind_iap_only(project, iap, audience):
    """Finding the run (the project's requests) and logging into it (kedro-mlflow's,
    through the mlflow package, signed by MlflowRunHooks)."""
    airflow_run_id = f"manual__pod-{audience is not None}"
    settings = dag_run(iap.url, EXPERIMENT, airflow_run_id) | {"GOOGLE_APPLICATION_CREDENTIALS": str(iap.key_file)}
    if audience:
        settings["MLFLOW_IAP_AUDIENCE"] = audience
    start_in_pod(project, **settings)

    task_in_pod(project, **settings)

    (tracked,) = runs_of(iap.upstream, EXPERIMENT, airflow_run_id)
    assert "preprocess_companies_node" in tags(tracked)["node_names"]
    clients = {request.user_agent.split("/")[0] for request in iap.to_mlflow()}
    assert clients == {"mlflow-python-client", "python-requests"}
    if audience:
        assert_signed(iap)
    else:
        assert_unsigned(iap)
