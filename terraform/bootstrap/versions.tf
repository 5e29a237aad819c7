# The bootstrap root: what must exist before the deploy workflow can run the main root
# (terraform/), applied once per environment by a person with Owner on the project, from
# a workstation (terraform/README.md "Bootstrap"). Its state holds no secret; keep it in the state
# bucket it creates (backend.tf.example), under its own prefix.
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }
}

provider "google" {
  project = var.project_id
}
