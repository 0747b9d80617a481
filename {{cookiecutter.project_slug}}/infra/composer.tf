# Cloud Composer 3 running Airflow 3, as a service account of its own.

resource "google_service_account" "composer" {
  account_id   = "${local.prefix}-composer"
  display_name = "Cloud Composer environment ${var.composer_environment}"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "composer_worker" {
  # checkov:skip=CKV_GCP_49:Composer requires roles/composer.worker of its environment's service account, which it acts as.
  project = var.project_id
  role    = "roles/composer.worker"
  member  = "serviceAccount:${google_service_account.composer.email}"
}

# Composer 3's service agent acts as the environment's service account.
resource "google_service_account_iam_member" "composer_agent" {
  service_account_id = google_service_account.composer.name
  role               = "roles/composer.ServiceAgentV2Ext"
  member             = "serviceAccount:service-${data.google_project.this.number}@cloudcomposer-accounts.iam.gserviceaccount.com"
  depends_on         = [google_project_service.apis]
}

# Starting pods on the GKE cluster (operator gke): GKEStartPodOperator's calls.
resource "google_project_iam_member" "composer_gke" {
  count   = local.gke ? 1 : 0
  project = var.project_id
  role    = "roles/container.developer"
  member  = "serviceAccount:${google_service_account.composer.email}"
}

resource "google_composer_environment" "main" {
  name   = var.composer_environment
  region = var.region
  config {
    environment_size = var.composer_environment_size
    software_config {
      image_version = var.composer_image_version
    }
    node_config {
      service_account = google_service_account.composer.email
    }
  }
  depends_on = [
    google_project_iam_member.composer_worker,
    google_service_account_iam_member.composer_agent,
  ]
}
