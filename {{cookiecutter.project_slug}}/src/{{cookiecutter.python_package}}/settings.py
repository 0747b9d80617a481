"""Project settings: only what differs from Kedro's defaults.

See https://docs.kedro.org/en/stable/configure/configuration_basics/.
"""

from .airflow_hooks import AirflowHooks

HOOKS = (AirflowHooks(),)

# `local` holds each developer's own settings and credentials; the pods run with
# `--env gcp`, which puts every persisted dataset on the data bucket.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
