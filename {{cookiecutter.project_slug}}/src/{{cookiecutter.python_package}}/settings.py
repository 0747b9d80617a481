"""Project settings: only what differs from Kedro's defaults.

See https://docs.kedro.org/en/stable/configure/configuration_basics/.
"""
{%- if cookiecutter.mlflow_tracking == "yes" %}

from omegaconf.resolvers import oc

from .airflow_hooks import AirflowHooks
from .mlflow_hooks import MlflowDatasetHooks, MlflowIdTokenHooks

# kedro-mlflow (a plugin: it registers itself) starts or resumes each run's MLflow
# run and logs its parameters (conf/base/mlflow.yml); these log the metrics and the
# model that the catalog marks, and sign requests for a server behind IAP.
HOOKS = (AirflowHooks(), MlflowDatasetHooks(), MlflowIdTokenHooks())
{%- else %}

from .airflow_hooks import AirflowHooks

HOOKS = (AirflowHooks(),)
# kedro-mlflow is installed with the project but tracking is off for it.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # the name in its metadata
{%- endif %}

# `local` holds each developer's own settings and credentials; the pods run with
# `--env gcp`, which puts every persisted dataset on the data bucket.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
{%- if cookiecutter.mlflow_tracking == "yes" %}
    # mlflow.yml reads MLFLOW_TRACKING_URI, which the DAG gives every task.
    "custom_resolvers": {"oc.env": oc.env},
{%- endif %}
}
