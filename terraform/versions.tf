# Terraform and provider versions. Constraints allow patch/minor updates inside one major
# version; the exact builds are pinned by .terraform.lock.hcl, which `terraform init`
# writes on first use and which must then be committed (see README.md).
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.30"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.30"
    }
    upstash = {
      source  = "upstash/upstash"
      version = "~> 1.5"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    # time_sleep: waits for IAM and log-based metrics to propagate (README "Deploy").
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
