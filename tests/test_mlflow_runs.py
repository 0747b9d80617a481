"""The one MLflow run of a DAG run, started and ended against a real MLflow server (slow).

The DAG's first task starts it either in a pod (`mlflow_start: pod`: `kedro run
--pipelines mlflow_start`, which hands the run id to Airflow through the XCom file) or
on Airflow's worker (`mlflow_start: airflow`: the module that `nox -s generate` ships
beside the DAGs, in Airflow's own environment, which has no mlflow package). Behind
Identity-Aware Proxy both sign their requests with a Google ID token: a recording
server of the test's own answers for MLflow and for Google's token endpoint.
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
DAG_ID = "spaceflights"
SCHEDULED = "scheduled__2026-11-26T00:00:00+00:00"  # Airflow run ids, as Airflow writes them
MANUAL = "manual__2026-11-26T08:30:12.345678+00:00"
AUDIENCE = "123456789012-iap0abcdef.apps.googleusercontent.com"  # IAP's OAuth client id
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
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
    """Airflow's own environment, from the bake's deploy/airflow lock."""
    venv = tmp_path_factory.mktemp("airflow") / "venv"
    run(uv(), "sync", "--locked", cwd=project / "deploy/airflow", env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)))
    return venv / "bin/python"


@pytest.fixture(scope="module")
def shipped(project, tmp_path_factory) -> Path:
    """mlflow_runs.py as `nox -s generate` ships it: beside the DAGs, as spaceflights_mlflow.py."""
    dags = tmp_path_factory.mktemp("dags")
    return Path(shutil.copy(project / "src/spaceflights/mlflow_runs.py", dags / "spaceflights_mlflow.py"))


def env(**settings: str) -> dict[str, str]:
    """This machine's environment with no MLflow or Google settings but ``settings``."""
    return {key: value for key, value in clean_env().items() if key not in SETTINGS} | settings


def first_task(tracking_uri: str, experiment: str, airflow_run_id: str) -> dict[str, str]:
    """What the DAG gives its first task's pod (MLFLOW_ENV in deploy/airflow_dag.j2)."""
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "MLFLOW_RUN_NAME": airflow_run_id,
        "AIRFLOW_DAG_ID": DAG_ID,
        "AIRFLOW_RUN_ID": airflow_run_id,
    }


def start_in_pod(project: Path, xcom: Path, **settings: str) -> str:
    """Run the DAG's first task as its pod does; return what it left for Airflow's XCom."""
    kedro_run = ("run", "--pipelines", "mlflow_start", "--params", f"mlflow_start.xcom_path={xcom}")
    run(project / ".venv/bin/kedro", *kedro_run, cwd=project, env=env(**settings))
    return json.loads(xcom.read_text())


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


# Pod start: `kedro run --pipelines mlflow_start`.


@pytest.fixture(scope="module")
def pod_start(project, server, tmp_path_factory) -> str:
    """The run id that a scheduled DAG run's first pod handed Airflow."""
    xcom = tmp_path_factory.mktemp("pod") / "airflow/xcom/return.json"
    return start_in_pod(project, xcom, **first_task(server, "pods", SCHEDULED))


def test_a_pod_starts_the_dag_runs_mlflow_run_and_hands_its_id_to_airflow(pod_start, server):
    assert isinstance(pod_start, str)
    (started,) = runs_of(server, "pods", SCHEDULED)
    assert started["info"]["run_id"] == pod_start
    assert (started["info"]["status"], started["info"]["run_name"]) == ("RUNNING", SCHEDULED)
    assert tags(started)["airflow_dag_id"] == DAG_ID
    assert tags(started)["airflow_run_id"] == SCHEDULED


def test_a_retried_pod_finds_the_run_and_another_dag_run_gets_its_own(project, server, pod_start, tmp_path):
    again = start_in_pod(project, tmp_path / "again.json", **first_task(server, "pods", SCHEDULED))
    other = start_in_pod(project, tmp_path / "other.json", **first_task(server, "pods", MANUAL))

    assert again == pod_start
    assert [found["info"]["run_id"] for found in runs_of(server, "pods", SCHEDULED)] == [pod_start]
    assert other != pod_start
    assert [found["info"]["run_id"] for found in runs_of(server, "pods", MANUAL)] == [other]


def test_the_last_pod_ends_the_run_as_the_dag_run_went(project, server):
    experiment = mlflow_api(server, "POST", "experiments/create", name="pod-ends")
    started_at = int(time.time() * 1000)
    created = mlflow_api(
        server, "POST", "runs/create", experiment_id=experiment["experiment_id"], start_time=started_at
    )
    run_id = created["run"]["info"]["run_id"]

    ending = env(MLFLOW_TRACKING_URI=server, MLFLOW_RUN_ID=run_id, MLFLOW_RUN_STATUS="FINISHED")
    run(project / ".venv/bin/python", "-m", "spaceflights.mlflow_runs", "end", cwd=project, env=ending)

    ended = mlflow_api(server, "GET", "runs/get", run_id=run_id)["run"]["info"]
    assert ended["status"] == "FINISHED"
    assert int(ended["end_time"]) >= started_at


# Airflow start: the shipped module, in Airflow's environment.


def test_airflow_has_no_mlflow_package(airflow_python):
    result = subprocess.run(
        [airflow_python, "-c", "import mlflow"], check=False, capture_output=True, text=True, env=env()
    )
    assert result.returncode == 1
    assert "No module named 'mlflow'" in result.stderr


def test_airflow_starts_the_run_once_and_ends_it_failed(airflow_python, shipped, server, tmp_path):
    start = {"tracking_uri": server, "experiment": "airflow", "dag_id": DAG_ID, "airflow_run_id": SCHEDULED}
    first, again = call_in_airflow(airflow_python, shipped, tmp_path, ("start_run", start), ("start_run", start))

    assert again == first
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


class Recorder(ThreadingHTTPServer):
    """MLflow as far as a start needs it, and Google's token endpoint (/token) for a service
    account whose key it writes to ``key_file``; it records every request on 127.0.0.1."""

    run_id = "0123456789abcdef0123456789abcdef"
    email = "composer@my-gcp-project.iam.gserviceaccount.com"

    def __init__(self, key_file: Path) -> None:
        super().__init__(("127.0.0.1", 0), Answer)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
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

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        experiment = {"experiment_id": "1", "lifecycle_stage": "active", "artifact_location": "mlflow-artifacts:/1"}
        match path:
            case "/token":
                return 200, {"id_token": self.id_token}
            case "/api/2.0/mlflow/experiments/get-by-name":
                return 200, {"experiment": experiment | {"name": query["experiment_name"][0]}}
            case "/api/2.0/mlflow/runs/search":
                return 200, {}
            case "/api/2.0/mlflow/runs/create":
                return 200, {"run": {"info": {"run_id": self.run_id, "experiment_id": "1", "status": "RUNNING"}}}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No {path} here"}

    def to_mlflow(self) -> list[Request]:
        return [request for request in self.requests if request.path.startswith("/api/")]

    def for_tokens(self) -> list[Request]:
        return [request for request in self.requests if request.path == "/token"]


class Answer(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        url = urlsplit(self.path)
        seen = Request(self.command, url.path, self.headers["Authorization"], self.headers["User-Agent"], body)
        self.server.requests.append(seen)
        status, answer = self.server.answer(url.path, parse_qs(url.query))
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
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
def iap(tmp_path) -> Iterator[Recorder]:
    with Recorder(tmp_path / "service-account.json") as recorder:
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        yield recorder
        recorder.shutdown()


def assert_signed(iap: Recorder) -> None:
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


def assert_unsigned(iap: Recorder) -> None:
    assert iap.to_mlflow()
    assert [(r.user_agent, r.path) for r in iap.to_mlflow() if r.authorization is not None] == []
    assert iap.for_tokens() == []


@pytest.mark.parametrize("audience", [AUDIENCE, None])
def test_airflow_signs_its_requests_behind_iap_only(airflow_python, shipped, iap, tmp_path, audience):
    start = {"tracking_uri": iap.url, "experiment": "airflow", "dag_id": DAG_ID, "airflow_run_id": SCHEDULED}
    call = ("start_run", start | {"audience": audience})

    (run_id,) = call_in_airflow(
        airflow_python, shipped, tmp_path, call, GOOGLE_APPLICATION_CREDENTIALS=str(iap.key_file)
    )

    assert run_id == iap.run_id
    paths = [request.path.removeprefix("/api/2.0/mlflow/") for request in iap.to_mlflow()]
    assert paths == ["experiments/get-by-name", "runs/search", "runs/create"]
    if audience:
        assert_signed(iap)
        assert len(iap.for_tokens()) == 1  # one token for all of a start's requests
    else:
        assert_unsigned(iap)


@pytest.mark.parametrize("audience", [AUDIENCE, None])
def test_a_pod_signs_its_requests_behind_iap_only(project, iap, tmp_path, audience):
    """kedro-mlflow's requests (the mlflow package's, signed by MlflowIdTokenHooks) and the start's own."""
    settings = first_task(iap.url, "pods", SCHEDULED) | {"GOOGLE_APPLICATION_CREDENTIALS": str(iap.key_file)}
    if audience:
        settings["MLFLOW_IAP_AUDIENCE"] = audience

    assert start_in_pod(project, tmp_path / "return.json", **settings) == iap.run_id

    clients = {request.user_agent.split("/")[0] for request in iap.to_mlflow()}
    assert clients == {"mlflow-python-client", "python-requests"}
    if audience:
        assert_signed(iap)
    else:
        assert_unsigned(iap)
