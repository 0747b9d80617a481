# The data the pods hand each other: gs://<data_bucket>/<name>/, the data root of
# conf/<env>/globals.yml. Each DAG run writes below <name>/runs/<DAG id>/<run id>/,
# which nobody needs once the run has ended: the bucket deletes it after run_data_days.

resource "google_storage_bucket" "data" {
  # checkov:skip=CKV_GCP_62:Access is recorded by Cloud Audit Logs (data access logs), not by a second bucket of usage logs.
  name                        = var.data_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # An overwritten or deleted object can be recovered for a week.
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age            = var.run_data_days
      matches_prefix = ["${var.name}/runs/"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "pods_data" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${local.pods_email}"
}

resource "google_project_iam_member" "pods_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${local.pods_email}"
}
