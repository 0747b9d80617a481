# The project's image, pushed by `nox -s push` and pulled by the pods.

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption; a customer key is a choice of the organisation, not of this project.
  repository_id = var.artifact_registry_repository
  location      = var.region
  format        = "DOCKER"
  description   = "Images of ${var.name}: one per commit, pinned by digest in the DAGs."
  # Images no DAG pins any more: untagged ones after 30 days; the newest 20 stay.
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "pods_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${local.pods_email}"
}
