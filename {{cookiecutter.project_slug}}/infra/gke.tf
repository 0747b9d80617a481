# With pod_operator = gke only: a GKE Autopilot cluster of this project, for pods
# Composer 3's own cluster cannot run (GPUs, large machines), and the pods' own
# service account, which their Kubernetes service account becomes through Workload
# Identity. After `apply`, create that Kubernetes service account once:
#   kubectl create namespace <k8s_namespace>
#   kubectl create serviceaccount <k8s_service_account> -n <k8s_namespace>
# (`nox -s infra` prints both commands with the names filled in.)

resource "google_container_cluster" "pods" {
  # checkov:skip=CKV_GCP_20:Composer 3's workers call the control plane from addresses this project does not own; access is by IAM.
  # checkov:skip=CKV_GCP_69:Autopilot runs the GKE metadata server on every node.
  # checkov:skip=CKV_GCP_65:Kubernetes RBAC by Google Groups needs an organisation's groups; IAM grants the access.
  # checkov:skip=CKV_GCP_66:Binary Authorization is the organisation's policy to set, not this project's.
  # checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed from Kubernetes; the pods meet the restricted Pod Security Standard.
  # checkov:skip=CKV_GCP_13:Autopilot manages client authentication: no client certificate is issued.
  # checkov:skip=CKV_GCP_21:Labels are left to the organisation's conventions.
  # checkov:skip=CKV_GCP_12:Autopilot enforces network policy with Dataplane V2.
  # checkov:skip=CKV_GCP_61:VPC flow logs belong to the network, which is the project's default one.
  count               = local.gke ? 1 : 0
  name                = var.gke_cluster
  location            = var.region
  enable_autopilot    = true
  deletion_protection = var.deletion_protection
  release_channel {
    channel = "REGULAR"
  }
  ip_allocation_policy {} # VPC-native: alias IP ranges, as Autopilot requires
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_service_account" "pods" {
  count        = local.gke ? 1 : 0
  account_id   = "${local.prefix}-pods"
  display_name = "Pods of ${var.name}'s DAGs"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account_iam_member" "pods_workload_identity" {
  count              = local.gke ? 1 : 0
  service_account_id = google_service_account.pods[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/${var.k8s_service_account}]"
  # The workload pool exists once a cluster uses it.
  depends_on = [google_container_cluster.pods]
}
