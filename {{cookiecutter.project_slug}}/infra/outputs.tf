# What the Kedro environment's settings need: `nox -s infra` writes these into
# conf/<env>/ (see the deployment's infra.py), so that `nox -s deploy` needs no edits.

output "gcp_project_id" {
  value = var.project_id
}

output "region" {
  value = var.region
}

output "operator" {
  description = "airflow.yml's operator."
  value       = var.pod_operator
}

output "cluster" {
  description = "The GKE cluster of the gke operator; null on Composer 3's own."
  value       = local.gke ? google_container_cluster.pods[0].name : null
}

output "namespace" {
  description = "Where the pods run: Composer 3 runs KubernetesPodOperator's in composer-user-workloads, whatever a DAG says."
  value       = local.gke ? var.k8s_namespace : "composer-user-workloads"
}

output "service_account" {
  description = "The pods' Kubernetes service account; null on Composer 3's cluster, where they run as the environment's."
  value       = local.gke ? var.k8s_service_account : null
}

output "pods_service_account" {
  description = "The Google service account the pods act as."
  value       = local.pods_email
}

output "image" {
  description = "The image's repository: `nox -s push` pushes there, the DAGs pin its digest."
  value       = local.image
}

output "composer_environment" {
  value = google_composer_environment.main.name
}

output "dags_folder" {
  value = google_composer_environment.main.config[0].dag_gcs_prefix
}

output "airflow_uri" {
  value = google_composer_environment.main.config[0].airflow_uri
}

output "data_root" {
  description = "globals.yml's data_root in the environment the tasks run with."
  value       = "gs://${google_storage_bucket.data.name}/${var.name}"
}

output "mlflow_tracking_uri" {
  value = var.mlflow ? google_cloud_run_v2_service.mlflow[0].uri : null
}

output "mlflow_iap_audience" {
  description = "The audience of the Google ID tokens the MLflow server takes: its own URL."
  value       = var.mlflow ? google_cloud_run_v2_service.mlflow[0].uri : null
}

output "deployer_service_account" {
  description = "GitHub's deploy workflow acts as it (the repository variable GCP_SERVICE_ACCOUNT)."
  value       = local.deployer == 1 ? google_service_account.deployer[0].email : null
}

output "workload_identity_provider" {
  description = "The repository variable GCP_WORKLOAD_IDENTITY_PROVIDER of the deploy workflow."
  value       = local.deployer == 1 ? google_iam_workload_identity_pool_provider.github[0].name : null
}

output "gke_setup" {
  description = "With the gke operator: the commands that make the pods' Kubernetes service account, once."
  value = local.gke ? [
    "gcloud container clusters get-credentials ${var.gke_cluster} --region ${var.region} --project ${var.project_id}",
    "kubectl create namespace ${var.k8s_namespace}",
    "kubectl create serviceaccount ${var.k8s_service_account} --namespace ${var.k8s_namespace}",
  ] : []
}
