# terraform.tfvars gives these the bake's answers; `<env>.tfvars` beside it may
# override them for one Kedro environment (nox -s infra -- --env <env>).

variable "project_id" {
  description = "The GCP project everything lives in."
  type        = string
}

variable "region" {
  description = "The region of Composer, the registry, the bucket, MLflow and the cluster."
  type        = string
}

variable "name" {
  description = "The project's slug: it names the resources this creates, and the data root below the bucket."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[a-z0-9]$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "composer_environment" {
  description = "The Cloud Composer 3 environment the DAGs are uploaded to."
  type        = string
}

variable "composer_image_version" {
  description = "An Airflow 3 build of Composer 3 (`gcloud composer environments list-image-versions`); without one, Composer 3 creates Airflow 2."
  type        = string
  default     = "composer-3-airflow-3.1.0-build.2"
  validation {
    condition     = can(regex("^composer-3-airflow-3\\.[0-9]+\\.[0-9]+(-build\\.[0-9]+)?$", var.composer_image_version))
    error_message = "composer_image_version must be a Composer 3 build of Airflow 3, composer-3-airflow-3.x.y-build.z: the DAGs need Airflow 3."
  }
}

variable "composer_environment_size" {
  description = "ENVIRONMENT_SIZE_SMALL, _MEDIUM or _LARGE: the size of Airflow's own database and web server."
  type        = string
  default     = "ENVIRONMENT_SIZE_SMALL"
}

variable "pod_operator" {
  description = "kubernetes: the pods run in Composer 3's own cluster, as the environment's service account; gke: on a GKE Autopilot cluster of this project (GPUs, large machines), as a service account of their own."
  type        = string
  default     = "kubernetes"
  validation {
    condition     = contains(["kubernetes", "gke"], var.pod_operator)
    error_message = "pod_operator must be kubernetes or gke, as airflow.yml's operator."
  }
}

variable "gke_cluster" {
  description = "The GKE Autopilot cluster the pods run on, with pod_operator = gke."
  type        = string
}

variable "k8s_namespace" {
  description = "The pods' namespace on the GKE cluster (pod_operator = gke; Composer 3 runs them in composer-user-workloads)."
  type        = string
}

variable "k8s_service_account" {
  description = "The pods' Kubernetes service account on the GKE cluster, which Workload Identity maps to theirs (pod_operator = gke)."
  type        = string
}

variable "artifact_registry_repository" {
  description = "The Docker repository of the project's image."
  type        = string
}

variable "data_bucket" {
  description = "The bucket of the data the pods hand each other: the data root is gs://<data_bucket>/<name>."
  type        = string
}

variable "run_data_days" {
  description = "Days a DAG run's data folder (<name>/runs/<DAG id>/<run id>/) is kept before the bucket deletes it."
  type        = number
  default     = 30
  validation {
    condition     = var.run_data_days >= 1
    error_message = "run_data_days must be at least 1."
  }
}

variable "mlflow" {
  description = "Whether to run the MLflow tracking server (Cloud Run, Cloud SQL, an artifact bucket)."
  type        = bool
  default     = true
}

variable "mlflow_version" {
  description = "The MLflow server's version: the official image ghcr.io/mlflow/mlflow:v<version>-full, through a remote repository of the registry. Keep it the project's mlflow (uv.lock)."
  type        = string
  default     = "3.17.2"
}

variable "mlflow_database_tier" {
  description = "The Cloud SQL tier of MLflow's backend store."
  type        = string
  default     = "db-f1-micro"
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows deploy, through Workload Identity Federation; empty: no deployer identity."
  type        = string
  default     = ""
  validation {
    condition     = var.github_repository == "" || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, or empty."
  }
}

variable "github_environments" {
  description = "The GitHub environments whose jobs may deploy (the deploy workflow's dev and prod)."
  type        = list(string)
  default     = ["dev", "prod"]
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster and the database: false only for a throwaway project."
  type        = bool
  default     = true
}
