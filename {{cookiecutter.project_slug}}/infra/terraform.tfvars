# The bake's answers. `nox -s infra -- --env <env>` applies them in the Terraform
# workspace of that Kedro environment, with infra/<env>.tfvars over them if present.
project_id                   = {{ cookiecutter.gcp_project_id | hcl_string }}
region                       = {{ cookiecutter.gcp_region | hcl_string }}
name                         = {{ cookiecutter.project_slug | hcl_string }}
composer_environment         = {{ cookiecutter.composer_environment | hcl_string }}
pod_operator                 = {{ cookiecutter.pod_operator | hcl_string }}
gke_cluster                  = {{ cookiecutter.gke_cluster | hcl_string }}
k8s_namespace                = {{ cookiecutter.k8s_namespace | hcl_string }}
k8s_service_account          = {{ cookiecutter.k8s_service_account | hcl_string }}
artifact_registry_repository = {{ cookiecutter.artifact_registry_repository | hcl_string }}
data_bucket                  = {{ cookiecutter.data_bucket | hcl_string }}
mlflow                       = {{ "true" if cookiecutter.mlflow_tracking == "yes" else "false" }}
# owner/name of the GitHub repository that deploys through Workload Identity Federation.
github_repository = ""
