"""The deployment layer of the project: from its Kedro pipelines to Airflow DAGs,
and from this machine to Cloud Composer. Nothing here is needed to write pipelines.

- ``plan``: the task plan of a pipeline: grouping, names, commands, checks;
- ``config``: the deployment's settings (conf/*/airflow.yml, deploy.yml, mlflow.yml),
  read as Kedro reads configuration;
- ``hooks``: what settings.py and the pipeline registry use: the DAG settings for
  ``kedro airflow create``, the tagging check, MLflow on or off;
- ``mlflow_hooks``, ``mlflow_runs``: one MLflow run per DAG run;
- ``dags`` and ``airflow_dag.j2``: writing the DAGs; ``airflow/``: the Airflow they
  are checked and run with here, locked as Composer runs it;
- ``ship``: building and pushing the image, uploading the DAGs; ``local``: one DAG run
  on this machine; ``__main__``: the commands the nox sessions run.
"""

from .hooks import check_tagging, dag_pipelines, project_pipelines

__all__ = ["check_tagging", "dag_pipelines", "project_pipelines"]
