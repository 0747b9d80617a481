# Terraform 1.6 or later, or OpenTofu 1.6 or later: nothing here is specific to one.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14, < 8"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4"
    }
  }
  # Each Kedro environment (gcp, dev, prod) is a workspace of its own: `nox -s infra`
  # selects it. Keep the state in a bucket once more than one person applies, with
  # `terraform init -backend-config=bucket=<a bucket of your own>`:
  # backend "gcs" { prefix = "terraform/state" }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}
