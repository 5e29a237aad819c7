# Terraform and provider versions. Terraform 1.11: write-only arguments (password_wo,
# secret_data_wo) and ephemeral resources keep generated secrets out of the state.
# Constraints allow patch/minor updates inside one major version. No .terraform.lock.hcl
# is committed yet (providers cannot be downloaded where this is developed): the first
# `terraform init` with network writes it, and committing it then pins the exact builds
# (terraform/README.md "Checks").
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50"
    }
    upstash = {
      source  = "upstash/upstash"
      version = "~> 1.5"
    }
    # ephemeral "random_password": 3.7 or later.
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    # time_sleep: waits for IAM and log-based metrics to propagate (terraform/README.md "What the first apply waits for").
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

# Upstash management API credentials: pass them as TF_VAR_upstash_email /
# TF_VAR_upstash_api_key from the CI secret store, never in a tfvars file.
provider "upstash" {
  email   = var.upstash_email
  api_key = var.upstash_api_key
}
