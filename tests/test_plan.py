"""The task plan's rules, on the module a bake ships (standard library only, so no install)."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys

import pytest
from conftest import PROJECT_TEMPLATE, bake
from hypothesis import given, settings
from hypothesis import strategies as st

PLAN_FILE = PROJECT_TEMPLATE / "src/{{cookiecutter.python_package}}_deploy/plan.py"
spec = importlib.util.spec_from_file_location("deploy_plan", PLAN_FILE)
plan_module = importlib.util.module_from_spec(spec)
sys.modules["deploy_plan"] = plan_module  # dataclasses look their module up
spec.loader.exec_module(plan_module)
NodeSpec, PlanError, make_plan = plan_module.NodeSpec, plan_module.PlanError, plan_module.make_plan

CONFIG = {
    "gcp_project_id": "p",
    "region": "europe-west1",
    "cluster": "c",
    "namespace": "n",
    "service_account": "sa",
    "image": "img",
    "machines": {"small": {"requests": {"cpu": "500m"}}, "medium": {}, "large": {"limits": {"memory": "4Gi"}}},
    "default_machine": "small",
}
SETTINGS = plan_module.check_settings(CONFIG, {}, "conf/base/airflow.yml")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def node(name: str, inputs=(), outputs=(), tags=()) -> NodeSpec:
    return NodeSpec(name, frozenset(tags), tuple(inputs), tuple(outputs))


# Spaceflights as the bake tags it (the slow tests check the same on the real pipelines).
SPACEFLIGHTS = [
    node("preprocess_companies_node", ["companies"], ["preprocessed_companies"], ["airflow.companies"]),
    node("preprocess_shuttles_node", ["shuttles"], ["preprocessed_shuttles"], ["airflow.shuttles", "machine.medium"]),
    node(
        "create_model_input_table_node",
        ["preprocessed_shuttles", "preprocessed_companies", "reviews"],
        ["model_input_table"],
        ["airflow.split", "machine.medium"],
    ),
    node(
        "split_data_node",
        ["model_input_table", "params:model_options"],
        ["X_train", "X_test", "y_train", "y_test"],
        ["airflow.split", "machine.medium"],
    ),
    node("train_model_node", ["X_train", "y_train"], ["regressor"]),
    node("evaluate_model_node", ["regressor", "X_test", "y_test"], ["metrics"]),
]


def plan(nodes, pipeline="__default__", **overrides):
    return make_plan("spaceflights", pipeline, "gcp", nodes, SETTINGS | overrides)


def test_the_bake_ships_this_module_unchanged(tmp_path):
    project = bake(tmp_path)
    assert (project / "src/spaceflights_deploy/plan.py").read_bytes() == PLAN_FILE.read_bytes()


def test_spaceflights_groups_into_five_tasks_and_six_without_grouping():
    grouped = plan(SPACEFLIGHTS)
    assert [t.id for t in grouped.tasks] == [
        "companies",
        "shuttles",
        "split",
        "train_model_node",
        "evaluate_model_node",
    ]
    assert grouped.edges == (
        ("companies", "split"),
        ("shuttles", "split"),
        ("split", "train_model_node"),
        ("split", "evaluate_model_node"),
        ("train_model_node", "evaluate_model_node"),
    )
    split = grouped.tasks[2]
    assert split.nodes == ("create_model_input_table_node", "split_data_node")
    assert split.machine == "medium"
    assert split.command == (
        *("python", "-m", "kedro", "run", "--pipelines", "__default__", "--env", "gcp"),
        "--only-missing-outputs",  # a retry resumes where the last try stopped
        *("--tags", "airflow.split"),
    )
    assert grouped.tasks[3].selection == ("--nodes", "train_model_node")
    assert grouped.tasks[3].pod_name == "train-model-node"
    assert grouped.dag_id == "spaceflights-__default__-gcp"
    assert ("X_train", "split", "train_model_node") in grouped.crossings
    assert len(plan(SPACEFLIGHTS, grouping=False).tasks) == 6


def test_kedro_env_setting_overrides_the_generation_environment():
    assert plan(SPACEFLIGHTS, kedro_env="prod").tasks[0].command[6:8] == ("--env", "prod")


def test_two_grouping_tags_on_one_node_are_refused():
    nodes = [node("a", tags=["airflow.x", "airflow.y"])]
    with pytest.raises(PlanError, match=r"node `a` has 2 grouping tags \(airflow.x, airflow.y\).*Keep one"):
        plan(nodes)


def test_a_group_reaching_itself_through_an_outside_node_names_the_cycle():
    nodes = [*SPACEFLIGHTS[:5], node("evaluate_model_node", ["regressor", "X_test"], ["metrics"], ["airflow.split"])]
    with pytest.raises(PlanError) as error:
        plan(nodes)
    assert "Pipeline `__default__`: grouping makes tasks depend on themselves: " in str(error.value)
    assert "airflow.split -> train_model_node -> airflow.split." in str(error.value)


def test_an_undeclared_machine_lists_the_declared_sizes():
    with pytest.raises(PlanError, match=r"node `a` asks for machine `huge`.*Declared sizes: small, medium, large\."):
        plan([node("a", tags=["machine.huge"])])


def test_a_node_named_like_a_group_is_refused():
    with pytest.raises(PlanError, match=r"node `airflow.load` starts with the grouping prefix `airflow.`.*Rename"):
        plan([node("airflow.load")])


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["load_data", "load-data"], "`load_data` and `load-data` both become the pod name `load-data`"),
        (["Train", "train"], "`Train` and `train` both become the pod name `train`"),
    ],
)
def test_names_colliding_once_made_safe_are_refused(names, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        plan([node(name) for name in names])


def test_a_group_and_a_node_with_the_same_task_id_are_refused():
    with pytest.raises(
        PlanError, match=re.escape("`airflow.train` and `train` both become the Airflow task id `train`")
    ):
        plan([node("load", tags=["airflow.train"]), node("train")])


def test_long_names_become_distinct_valid_pod_names():
    names = [f"{'very_long_node_name_' * 4}{i}" for i in range(3)]
    tasks = plan([node(name) for name in names]).tasks
    assert len({t.pod_name for t in tasks}) == 3
    assert all(DNS_LABEL.match(t.pod_name) and len(t.pod_name) <= 54 for t in tasks)


def test_a_group_of_mixed_machines_gets_the_largest_declared_whatever_the_order():
    for tags in (["machine.large", "machine.small"], ["machine.small", "machine.large"]):
        nodes = [node(f"n{i}", tags=["airflow.g", tag]) for i, tag in enumerate(tags)]
        result = plan(nodes)
        assert result.tasks[0].machine == "large"
        assert result.warnings == (
            f"Pipeline `__default__`: the nodes of `airflow.g` ask for different machines "
            f"({tags[0].removeprefix('machine.')}: n0; {tags[1].removeprefix('machine.')}: n1); "
            "the task gets the largest, `large`.",
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"retries": "three"}, "conf/gcp/airflow.yml: `retries` must be int, not 'three'."),
        ({"retries": True}, "conf/gcp/airflow.yml: `retries` must be int, not True."),
        ({"grouping": "yes"}, "`grouping` must be bool, not 'yes'."),
        ({"tags": ["ok", 3]}, "`tags` must be list of strings, not ['ok', 3]."),
        (
            {"schedule_interval": "@daily"},
            "`schedule_interval` is not a setting: Airflow 3 removed it: use `schedule`.",
        ),
        ({"retry": 1}, "unknown setting `retry`. Known: grouping, group_prefix"),
        ({"operator": "ecs"}, "`operator` must be one of gke, kubernetes, local, not 'ecs'."),
        ({"mlflow_tasks_on": "airflow"}, "`mlflow_tasks_on` must be one of worker, pod, off, not 'airflow'."),
        ({"mlflow_tasks_on": True}, "`mlflow_tasks_on` must be one of worker, pod, off, not True."),
        ({"mlflow_iap_audience": 5000}, "`mlflow_iap_audience` must be str or null, not 5000."),
        (
            {"mlflow_start": "airflow"},
            "`mlflow_start` is not a setting: it is now `mlflow_tasks_on` (worker, pod or off).",
        ),
        (
            {"mlflow_experiment": "x"},
            "`mlflow_experiment` is not a setting: the experiment is `tracking.experiment.name` in conf/<env>/mlflow.yml",
        ),
        ({"execution_timeout": 0}, "`execution_timeout` must be positive, not 0."),
        (
            {"machines": {"small": {"execution_timeout": "1h"}}},
            "machines.small.execution_timeout must be a positive number of minutes, not '1h'.",
        ),
        ({"machines": {"small": {"gpu": 1}}}, "machine `small` may have only execution_timeout, limits, requests."),
        ({"image": None}, "`image` must be str, not None."),
        (
            {"default_machine": "tiny"},
            "`default_machine` is 'tiny', which `machines` does not declare (small, medium, large).",
        ),
        (
            {"machines": {"small": {"requests": {"cpu": "lots"}}}},
            "machines.small.requests.cpu is 'lots', not a Kubernetes",
        ),
        ({"start_date": "soon"}, "`start_date` must be a date like 2026-01-01, not 'soon'."),
    ],
)
def test_bad_settings_name_the_key_and_the_file(change, message):
    files = dict.fromkeys(change, "conf/gcp/airflow.yml")
    with pytest.raises(PlanError) as error:
        plan_module.check_settings(CONFIG | change, files, "conf/base/airflow.yml")
    assert message in str(error.value)


def test_missing_settings_are_named_with_the_file_they_belong_in():
    config = {k: v for k, v in CONFIG.items() if k not in {"image", "cluster"}}
    with pytest.raises(PlanError, match=r"conf/base/airflow.yml: missing setting\(s\) cluster, image under `default`"):
        plan_module.check_settings(config, {}, "conf/base/airflow.yml")
    # The kubernetes operator (Composer 3's cluster) needs no GKE cluster, and no service account.
    composer = {"operator": "kubernetes", "image": "i", "namespace": "composer-user-workloads"}
    settings = plan_module.check_settings(
        {k: v for k, v in config.items() if k != "service_account"} | composer, {}, "x"
    )
    assert (settings["cluster"], settings["service_account"]) == (None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"namespace": "spaceflights"},
            "conf/gcp/airflow.yml: `namespace: spaceflights`, but Cloud Composer 3 runs KubernetesPodOperator's pods "
            "only in composer-user-workloads, whatever a DAG says. Set `namespace: composer-user-workloads`, or "
            "`operator: gke`",
        ),
        (
            {"service_account": "kedro-runner"},
            "conf/gcp/airflow.yml: `service_account: kedro-runner`, but on Cloud Composer 3's cluster the pods run as "
            "the environment's service account",
        ),
    ],
)
def test_what_composer_3_would_not_do_with_its_pods_is_refused(change, message):
    composer = CONFIG | {"operator": "kubernetes", "namespace": "composer-user-workloads", "service_account": None}
    assert plan_module.check_settings(composer, {}, "x")["namespace"] == "composer-user-workloads"
    with pytest.raises(PlanError) as error:
        plan_module.check_settings(composer | change, dict.fromkeys(change, "conf/gcp/airflow.yml"), "x")
    assert message in str(error.value)
    # On a GKE cluster of one's own, both are the user's to choose.
    assert plan_module.check_settings(CONFIG | change, {}, "x")["operator"] == "gke"


# The MLflow run of a DAG run: `mlflow_tasks_on` adds a first and a last task around the pipeline's.
MLFLOW = {"mlflow_tasks_on": "worker"}
START, END = "start_mlflow_run", "end_mlflow_run"


def test_mlflow_tasks_cannot_run_in_pods_without_pods():
    with pytest.raises(PlanError) as error:
        plan_module.check_settings(
            CONFIG | {"mlflow_tasks_on": "pod", "operator": "local"}, {"mlflow_tasks_on": "conf/gcp/airflow.yml"}, "x"
        )
    assert "conf/gcp/airflow.yml: `mlflow_tasks_on: pod` needs pods, and `operator` is local." in str(error.value)


@pytest.mark.parametrize("off", ["off", False])
def test_mlflow_tasks_off_in_either_spelling_mean_no_mlflow_tasks(off):
    settings = plan_module.check_settings(CONFIG | {"mlflow_tasks_on": off}, {}, "x")
    assert settings["mlflow_tasks_on"] == "off"
    assert plan(SPACEFLIGHTS, **settings).start is None
    assert plan_module.check_settings(CONFIG, {}, "x")["mlflow_tasks_on"] == "off", "off unless airflow.yml says"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://mlflow:5000", None),
        ("https://mlflow.example.com/x: y", None),
        ("sqlite:///mlflow.db", "pods share no disk"),
        ("file:///tmp/mlruns", "pods share no disk"),
        ("http://", "pods share no disk"),
        ("https://user:secret@mlflow.example.com", "it carries credentials"),
        ("https://token@mlflow.example.com", "it carries credentials"),
    ],
)
def test_a_tracking_uri_must_be_a_bare_server_address(uri, problem):
    found = plan_module.tracking_uri_problem(uri)
    assert (found is None) if problem is None else found.startswith(problem)
    if problem:
        with pytest.raises(PlanError, match=re.escape(f"conf/gcp/mlflow.yml: `server.mlflow_tracking_uri` is {uri!r}")):
            plan_module.check_tracking_uri(uri, "conf/gcp/mlflow.yml")


def test_tasks_may_run_as_long_as_their_machine_says_or_the_default():
    machines = CONFIG["machines"] | {"large": {"execution_timeout": 360}}
    settings = plan_module.check_settings(CONFIG | {"machines": machines, "execution_timeout": 45}, {}, "x")
    nodes = [node("a"), node("b", tags=["machine.large"])]
    result = plan(nodes, **settings | MLFLOW)
    assert [task.timeout for task in result.tasks] == [45, 360]
    assert (result.start.timeout, result.end.timeout) == (45, 45)  # the default machine's


def test_mlflow_tasks_on_adds_a_first_and_a_last_task_of_their_own():
    with_mlflow, without = plan(SPACEFLIGHTS, **MLFLOW), plan(SPACEFLIGHTS)
    assert (with_mlflow.tasks, with_mlflow.edges) == (without.tasks, without.edges)
    assert without.start is None and without.end is None
    start, end = with_mlflow.start, with_mlflow.end
    assert (start.id, end.id) == (START, END)
    assert (start.pod_name, end.pod_name) == ("start-mlflow-run", "end-mlflow-run")
    assert start.command == ("python", "-m", "kedro", "run", "--pipelines", START, "--env", "gcp")
    assert end.command == ("python", "-m", "spaceflights_deploy.mlflow_runs", "end")
    assert (start.nodes, end.nodes, start.machine, end.machine) == ((), (), "small", "small")
    # Both modes plan the same tasks: only the DAG runs them on the worker or in pods.
    assert plan(SPACEFLIGHTS, **MLFLOW | {"mlflow_tasks_on": "pod"}).start == start
    # The run starts in the environment the tasks run with.
    assert plan(SPACEFLIGHTS, **MLFLOW, kedro_env="prod").start.command[-2:] == ("--env", "prod")
    assert plan(SPACEFLIGHTS, pipeline="data_science", **MLFLOW).start.command[4:6] == ("--pipelines", START)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (
            [node(START)],
            f"`{START}` becomes the Airflow task id `{START}`, which the DAG's MLflow task",
        ),
        (
            [node("load", tags=[f"airflow.{END}"])],
            f"`airflow.{END}` becomes the Airflow task id `{END}`, which the DAG's MLflow task has. Rename it.",
        ),
        (
            [node("Start-MLflow-Run")],
            "`Start-MLflow-Run` becomes the pod name `start-mlflow-run`, which the DAG's MLflow task",
        ),
    ],
)
def test_a_task_named_like_an_mlflow_task_is_refused(nodes, message):
    with pytest.raises(PlanError, match=re.escape(f"Pipeline `__default__`: {message}")):
        plan(nodes, **MLFLOW)
    assert plan(nodes).tasks[0].nodes == (nodes[0].name,)  # without MLflow, the name is free


# Random pipelines: node i may read what nodes before it wrote; some nodes share groups.
@st.composite
def tagged_pipelines(draw):
    count = draw(st.integers(1, 12))
    groups = draw(st.lists(st.sampled_from([None, "g0", "g1", "g2"]), min_size=count, max_size=count))
    nodes = []
    for i in range(count):
        reads = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        tags = [f"airflow.{groups[i]}"] if groups[i] else []
        nodes.append(node(f"n{i}", [f"d{j}" for j in sorted(reads)] + ["raw"], [f"d{i}"], tags))
    return nodes


def contracted(nodes):
    """The task graph, computed directly: node edges between different tasks."""
    task = {n.name: next(iter(n.tags), n.name) for n in nodes}
    edges = {(task[f"n{d[1:]}"], task[n.name]) for n in nodes for d in n.inputs if d != "raw"}
    return task, {(a, b) for a, b in edges if a != b}


def has_cycle(edges) -> bool:
    """Does any task reach itself? (Plain reachability: no topological sort.)"""
    reach = {}
    for a, b in edges:
        reach.setdefault(a, set()).add(b)
    for start in reach:
        seen, frontier = set(), [start]
        while frontier:
            for nxt in reach.get(frontier.pop(), ()):
                if nxt == start:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
    return False


@settings(max_examples=300, deadline=None)
@given(tagged_pipelines())
def test_plans_of_random_pipelines_keep_every_node_and_edge(nodes):
    _, edges = contracted(nodes)
    try:
        result = plan(nodes)
    except PlanError as error:
        assert has_cycle(edges), error
        loop = re.search(r"themselves: (.*)\. Put", str(error)).group(1).split(" -> ")
        assert loop[0] == loop[-1] and all(step in edges for step in itertools.pairwise(loop))
        return
    assert not has_cycle(edges)
    placed = [name for t in result.tasks for name in t.nodes]
    assert sorted(placed) == sorted(n.name for n in nodes)  # each node in exactly one task
    label_of = {t.id: t.label for t in result.tasks}
    assert {(label_of[a], label_of[b]) for a, b in result.edges} == edges
    assert len(result.edges) == len(edges)
    position = {t.id: i for i, t in enumerate(result.tasks)}
    assert all(position[a] < position[b] for a, b in result.edges)  # upstream first


@settings(max_examples=100, deadline=None)
@given(tagged_pipelines())
def test_without_grouping_every_node_is_a_task(nodes):
    result = plan(nodes, grouping=False)
    assert [t.nodes for t in result.tasks] == [(n.name,) for n in sorted(nodes, key=lambda n: int(n.name[1:]))]


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_a_dag_runs_folder_is_path_safe_and_its_own(dag_id, run_id):
    prefix = plan_module.dag_run_prefix(dag_id, run_id)
    parts = prefix.split("/")
    assert len(parts) == 3 and parts[0] == "runs"
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", part) and part not in {".", ".."} for part in parts)
    # Ids that become the same characters still get folders of their own.
    other = dag_id + ":" if dag_id.endswith("-") else dag_id + "-"
    assert plan_module.dag_run_prefix(other, run_id) != prefix


def test_an_airflow_run_id_keeps_its_readable_parts():
    prefix = plan_module.dag_run_prefix("spaceflights", "scheduled__2026-12-04T00:00:00+00:00")
    assert prefix.startswith("runs/spaceflights/scheduled__2026-12-04T00-00-00-00-00-")
    assert plan_module.dag_run_prefix("spaceflights", "manual_1") == "runs/spaceflights/manual_1"


def test_only_a_task_of_a_dag_run_gets_a_folder_of_its_own(monkeypatch):
    monkeypatch.delenv("AIRFLOW_DAG_ID", raising=False)
    monkeypatch.delenv("AIRFLOW_RUN_ID", raising=False)
    assert plan_module.dag_run_root("gs://bucket/project") == "gs://bucket/project"
    monkeypatch.setenv("AIRFLOW_DAG_ID", "spaceflights")
    monkeypatch.setenv("AIRFLOW_RUN_ID", "manual_1")
    assert plan_module.dag_run_root("gs://bucket/project/") == "gs://bucket/project/runs/spaceflights/manual_1"


PARAMETERS = {
    "model_options": {"test_size": 0.2, "random_state": 3, "features": ["engines", "crew"], "scale": True},
    "label": None,
    "unused": {"x": "y"},
}


def test_a_dag_run_can_be_given_the_leaves_of_the_parameters_its_nodes_take():
    leaves = plan_module.dag_params(PARAMETERS, ["params:model_options", "companies", "params:label"])
    assert leaves == {
        "label": None,
        "model_options.features": ["engines", "crew"],
        "model_options.random_state": 3,
        "model_options.scale": True,
        "model_options.test_size": 0.2,
    }
    assert plan_module.dag_params(PARAMETERS, ["params:model_options.test_size"]) == {"model_options.test_size": 0.2}
    assert "unused.x" in plan_module.dag_params(PARAMETERS, ["parameters"])
    types = {key: plan_module.param_type(value) for key, value in leaves.items()}
    assert types == {
        "label": None,  # null in conf: any value
        "model_options.features": "array",
        "model_options.random_state": "integer",
        "model_options.scale": "boolean",
        "model_options.test_size": "number",
    }


def test_the_parameters_a_run_is_given_become_nested_values_over_confs():
    conf = plan_module.dag_params(PARAMETERS, ["parameters"])
    given = {"model_options.test_size": 1, "model_options.features": ["a, b", "{{ 7*7 }}"], "label": {"x": 1}}
    assert plan_module.check_dag_params(given, conf) == {
        "model_options": {"test_size": 1, "features": ["a, b", "{{ 7*7 }}"]},  # an int is a number
        "label": {"x": 1},
    }


def test_a_wrong_type_or_an_unknown_parameter_is_refused_naming_it_and_what_was_expected():
    conf = plan_module.dag_params(PARAMETERS, ["parameters"])
    given = {"model_options.test_size": "0.3", "model_options.random_state": True, "model_options.tst_size": 0.3}
    with pytest.raises(PlanError) as refused:
        plan_module.check_dag_params(given, conf)
    message = str(refused.value)
    assert '`model_options.test_size` is "0.3": expected number (conf\'s value is 0.2).' in message
    assert "`model_options.random_state` is true: expected integer (conf's value is 3)." in message
    assert "`model_options.tst_size` is not a parameter of this project; its parameters are label," in message
