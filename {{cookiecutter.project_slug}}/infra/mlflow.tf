# With mlflow = true: the MLflow tracking server on Cloud Run, which only Composer's
# workers and the pods may call, each with a Google ID token whose audience is the
# service's URL (airflow.yml's mlflow_iap_audience); nobody else, never the public.
# Its runs live in Cloud SQL (PostgreSQL), its artifacts in a bucket of their own,
# served through the server, so that callers need no access to that bucket.

locals {
  mlflow = var.mlflow ? 1 : 0
  # By a key known before apply; on Composer 3's cluster the pods are the workers.
  mlflow_callers = merge(
    { composer = google_service_account.composer.email },
    local.gke ? { pods = google_service_account.pods[0].email } : {},
  )
  mlflow_image    = "${var.region}-docker.pkg.dev/${var.project_id}/ghcr/mlflow/mlflow:v${var.mlflow_version}-full"
  mlflow_database = "mlflow"
}

# The official image, from GitHub's registry through one of this project's: Cloud Run
# pulls from Artifact Registry.
resource "google_artifact_registry_repository" "ghcr" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption; a customer key is a choice of the organisation, not of this project.
  count         = local.mlflow
  repository_id = "ghcr"
  location      = var.region
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  description   = "ghcr.io, for the MLflow server's image"
  remote_repository_config {
    docker_repository {
      custom_repository {
        uri = "https://ghcr.io"
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_service_account" "mlflow" {
  count        = local.mlflow
  account_id   = "${local.prefix}-mlflow"
  display_name = "MLflow tracking server of ${var.name}"
  depends_on   = [google_project_service.apis]
}

resource "google_storage_bucket" "mlflow_artifacts" {
  # checkov:skip=CKV_GCP_62:Access is recorded by Cloud Audit Logs (data access logs), not by a second bucket of usage logs.
  count                       = local.mlflow
  name                        = "${var.data_bucket}-mlflow"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "mlflow_artifacts" {
  count  = local.mlflow
  bucket = google_storage_bucket.mlflow_artifacts[0].name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.mlflow[0].email}"
}

resource "google_sql_database_instance" "mlflow" {
  # checkov:skip=CKV_GCP_60:The public address has no authorised network: the server reaches it only through Cloud Run's Cloud SQL connector, by IAM.
  # checkov:skip=CKV_GCP_79:Keep to a PostgreSQL version MLflow's migrations support; raise it with the server.
  count               = local.mlflow
  name                = "${local.prefix}-mlflow"
  region              = var.region
  database_version    = "POSTGRES_16"
  deletion_protection = var.deletion_protection
  settings {
    tier              = var.mlflow_database_tier
    edition           = "ENTERPRISE"
    availability_type = "ZONAL"
    ip_configuration {
      ipv4_enabled = true
      # Cloud Run's connector presents a client certificate: nothing else gets in.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
    # What checkov's PostgreSQL checks ask the server to log.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "mlflow" {
  count    = local.mlflow
  name     = local.mlflow_database
  instance = google_sql_database_instance.mlflow[0].name
}

resource "random_password" "mlflow" {
  count   = local.mlflow
  length  = 32
  special = false
}

resource "google_sql_user" "mlflow" {
  count    = local.mlflow
  name     = "mlflow"
  instance = google_sql_database_instance.mlflow[0].name
  password = random_password.mlflow[0].result
}

# The backend store's address, password included, reaches the server as a secret.
resource "google_secret_manager_secret" "mlflow_store" {
  count     = local.mlflow
  secret_id = "${local.prefix}-mlflow-store"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "mlflow_store" {
  count       = local.mlflow
  secret      = google_secret_manager_secret.mlflow_store[0].id
  secret_data = "postgresql+psycopg2://${google_sql_user.mlflow[0].name}:${random_password.mlflow[0].result}@/${local.mlflow_database}?host=/cloudsql/${google_sql_database_instance.mlflow[0].connection_name}"
}

resource "google_secret_manager_secret_iam_member" "mlflow_store" {
  count     = local.mlflow
  secret_id = google_secret_manager_secret.mlflow_store[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.mlflow[0].email}"
}

resource "google_project_iam_member" "mlflow_sql" {
  count   = local.mlflow
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.mlflow[0].email}"
}

resource "google_cloud_run_v2_service" "mlflow" {
  count    = local.mlflow
  name     = "${local.prefix}-mlflow"
  location = var.region
  # Composer 3's workers and the pods call it over the internet; only a caller with
  # roles/run.invoker (below) gets past Cloud Run's IAM check.
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  template {
    service_account = google_service_account.mlflow[0].email
    scaling {
      min_instance_count = 0 # idle costs nothing but the database
      max_instance_count = 1
    }
    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.mlflow[0].connection_name]
      }
    }
    containers {
      image = local.mlflow_image
      args = [
        "mlflow", "server", "--host", "0.0.0.0", "--port", "8080",
        "--artifacts-destination", "gs://${google_storage_bucket.mlflow_artifacts[0].name}",
        "--allowed-hosts", "*.run.app",
      ]
      ports {
        container_port = 8080
      }
      env {
        name = "MLFLOW_BACKEND_STORE_URI"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.mlflow_store[0].secret_id
            version = "latest"
          }
        }
      }
      resources {
        limits = {
          cpu    = "1"
          memory = "2Gi"
        }
      }
      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }
    }
  }
  depends_on = [
    google_secret_manager_secret_iam_member.mlflow_store,
    google_secret_manager_secret_version.mlflow_store,
    google_project_iam_member.mlflow_sql,
  ]
}

# Only the environment's workers and the pods may call it.
resource "google_cloud_run_v2_service_iam_member" "mlflow_callers" {
  for_each = var.mlflow ? local.mlflow_callers : {}
  name     = google_cloud_run_v2_service.mlflow[0].name
  location = google_cloud_run_v2_service.mlflow[0].location
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}
