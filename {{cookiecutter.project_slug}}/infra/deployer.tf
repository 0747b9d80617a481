# With github_repository set: the identity the repository's workflows deploy as,
# through Workload Identity Federation with GitHub's OIDC tokens (no key), limited to
# that repository's jobs in its deploy environments (github_environments). It may push the image, read the Composer environment (its DAG
# folder) and write the DAG folder's objects: what `nox -s deploy` does.

locals {
  deployer = var.github_repository == "" ? 0 : 1
  # gs://<bucket>/dags: the bucket of the environment's DAG folder.
  dags_bucket = split("/", google_composer_environment.main.config[0].dag_gcs_prefix)[2]
}

resource "google_iam_workload_identity_pool" "github" {
  count                     = local.deployer
  workload_identity_pool_id = "${local.prefix}-github"
  display_name              = "GitHub Actions"
  depends_on                = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  # checkov:skip=CKV_GCP_125:The condition pins the sub claim to repo:<github_repository>:environment:<each deploy environment>, built from variables checkov does not evaluate.
  count                              = local.deployer
  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Tokens of this repository's deploy jobs only: those of its deploy environments.
  attribute_condition = join(" || ", [
    for environment in var.github_environments :
    "assertion.sub == \"repo:${var.github_repository}:environment:${environment}\""
  ])
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "deployer" {
  count        = local.deployer
  account_id   = "${local.prefix}-deployer"
  display_name = "Deploys ${var.name} from ${var.github_repository}"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account_iam_member" "deployer_federation" {
  count              = local.deployer
  service_account_id = google_service_account.deployer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository/${var.github_repository}"
}

resource "google_artifact_registry_repository_iam_member" "deployer_push" {
  count      = local.deployer
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deployer[0].email}"
}

resource "google_project_iam_member" "deployer_composer" {
  count   = local.deployer
  project = var.project_id
  role    = "roles/composer.user"
  member  = "serviceAccount:${google_service_account.deployer[0].email}"
}

resource "google_storage_bucket_iam_member" "deployer_dags" {
  count  = local.deployer
  bucket = local.dags_bucket
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.deployer[0].email}"
}
