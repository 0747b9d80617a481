locals {
  gke = var.pod_operator == "gke"
  # Service account ids are 6 to 30 characters: the name's first 20, and a role.
  prefix = trimsuffix(substr(var.name, 0, 20), "-")
  apis = concat(
    [
      "artifactregistry.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "composer.googleapis.com",
      "iam.googleapis.com",
      "iamcredentials.googleapis.com",
      "logging.googleapis.com",
      "storage.googleapis.com",
      "sts.googleapis.com",
    ],
    local.gke ? ["container.googleapis.com"] : [],
    var.mlflow ? ["run.googleapis.com", "secretmanager.googleapis.com", "sqladmin.googleapis.com"] : [],
  )
  # Who the pods run as: on Composer 3's cluster, the environment's service account
  # (its user workloads always do); on the GKE cluster, their own.
  pods_email = local.gke ? google_service_account.pods[0].email : google_service_account.composer.email
  image      = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/${var.name}"
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
