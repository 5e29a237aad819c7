variable "project_id" {
  description = "The environment's GCP project (the one terraform/ deploys into)."
  type        = string
}

variable "environment" {
  description = "staging or production: the GitHub environment allowed to deploy; <environment>-plan may plan."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "name_prefix" {
  description = "The main root's name_prefix (the deployer may manage and act as <prefix>-* accounts only; its own and the planner are gh-deploy-<prefix>, gh-plan-<prefix>, outside that set)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,13}$", var.name_prefix))
    error_message = "name_prefix: 3-14 chars, lowercase letters, digits and dashes."
  }
}

variable "github_owner" {
  description = "Owner (organisation or user) of the repository whose workflows may authenticate."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.github_owner))
    error_message = "github_owner: a GitHub organisation or user name."
  }
}

variable "github_repository" {
  description = "Name of that repository (without the owner)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository: the repository name, without owner/."
  }
}

variable "github_repository_id" {
  description = "Numeric id of the repository (gh api repos/OWNER/NAME --jq .id): survives renames, a re-created owner/name does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.github_repository_id))
    error_message = "github_repository_id: the repository's numeric id."
  }
}

variable "state_bucket" {
  description = "Name of the Terraform state bucket (global, lowercase: e.g. acme-reel-tfstate)."
  type        = string

  validation {
    # Cloud Storage bucket names: 3-63 lowercase letters, digits, dashes, underscores, dots.
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket: 3-63 lowercase letters, digits, '-', '_' or '.'; Cloud Storage refuses upper case."
  }
}

variable "state_location" {
  description = "Location of the state bucket."
  type        = string
  default     = "EU"
}
