"""Project settings: only what differs from Kedro's defaults.

See https://docs.kedro.org/en/stable/configure/configuration_basics/.
"""

from omegaconf.resolvers import oc

from {{ cookiecutter.python_package }}_deploy import hooks
{%- if cookiecutter.mlflow_tracking == "yes" %}

# The deployment layer's hooks (src/{{ cookiecutter.python_package }}_deploy): the DAG settings, and MLflow.
# kedro-mlflow (a plugin: it registers itself) logs every run to MLflow (see
# conf/base/mlflow.yml), except the tasks of a DAG whose MLflow tasks are off.
HOOKS = hooks.project_hooks(mlflow=True)
DISABLE_HOOKS_FOR_PLUGINS = hooks.disabled_plugins(mlflow=True)
{%- else %}

# The deployment layer's hooks (src/{{ cookiecutter.python_package }}_deploy): the DAG settings.
HOOKS = hooks.project_hooks(mlflow=False)
# kedro-mlflow is installed with the project but tracks nothing.
DISABLE_HOOKS_FOR_PLUGINS = hooks.disabled_plugins(mlflow=False)
{%- endif %}

# `local` holds each developer's own settings and credentials; the Airflow tasks run
# with `--env gcp`, which puts every persisted dataset on the data bucket.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # ${oc.env:...} in conf/ reads an environment variable (MLFLOW_TRACKING_URI);
    # ${dag_run:...}, a DAG run's own data folder (conf/base/globals.yml).
    "custom_resolvers": {"oc.env": oc.env, **hooks.RESOLVERS},
}

# Kedro's catalog, except that in a task of an Airflow DAG run every versioned dataset
# saves the run's one version, so the run's later tasks load exactly what it saved.
DATA_CATALOG_CLASS = hooks.DagRunCatalog
