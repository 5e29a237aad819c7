# Workload Identity Federation for GitHub Actions, the planner and deployer accounts, and
# the state bucket. No service account key exists: a job exchanges GitHub's OIDC token for
# short-lived credentials of one account, chosen by the job's GitHub environment.

locals {
  apis = toset([
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ])

  plan_environment = "${var.environment}-plan"

  # The planner runs terraform plan -refresh=false: it reads the state (bucket-level
  # grant below) and the one data source, data.google_project (resourcemanager.projects.get).
  # Nothing else: no secret payload (no secretmanager.versions.access) and no management
  # key (the plan job gets none, .github/workflows/deploy.yml).
  planner_roles = toset([
    "roles/browser",
  ])

  # The deployer creates everything terraform/ declares, and runs the migration job.
  deployer_roles = toset([
    "roles/apigateway.admin",
    "roles/artifactregistry.admin",
    "roles/cloudfunctions.admin",
    "roles/cloudsql.admin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/logging.configWriter",
    "roles/monitoring.editor",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/servicemanagement.admin",
    "roles/servicenetworking.networksAdmin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
    "roles/vpcaccess.admin",
  ])

  # The only project roles terraform/ grants (google_project_iam_member): the deployer
  # may set no others on the project.
  grantable_project_roles = [
    "roles/logging.logWriter",
    "roles/storage.objectViewer",
  ]
}

resource "google_project_service" "bootstrap" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
  description               = "Workflows of ${var.github_owner}/${var.github_repository}"

  depends_on = [google_project_service.bootstrap]
}

# google-github-actions/auth: "Always add an Attribute Condition". Only this repository
# (by id and name) and only its two GitHub environments for this project; a job without
# an environment has no environment claim and is refused.
resource "google_iam_workload_identity_pool_provider" "github" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-oidc"
  display_name                       = "GitHub OIDC"

  attribute_mapping = {
    "google.subject"          = "assertion.sub"
    "attribute.repository"    = "assertion.repository"
    "attribute.repository_id" = "assertion.repository_id"
    "attribute.environment"   = "assertion.environment"
    "attribute.ref"           = "assertion.ref"
  }

  # The sub claim of a job with an environment is repo:<owner/name>:environment:<name>.
  attribute_condition = "(assertion.sub == 'repo:${var.github_owner}/${var.github_repository}:environment:${var.environment}' || assertion.sub == 'repo:${var.github_owner}/${var.github_repository}:environment:${var.environment}-plan') && assertion.repository_id == '${var.github_repository_id}'"

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "planner" {
  project      = var.project_id
  account_id   = "gh-plan-${var.name_prefix}"
  display_name = "Terraform planner (pull requests, read-only)"

  depends_on = [google_project_service.bootstrap]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "gh-deploy-${var.name_prefix}"
  display_name = "Terraform deployer (main, after CI)"

  depends_on = [google_project_service.bootstrap]
}

resource "google_project_iam_member" "planner" {
  for_each = local.planner_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.planner.email}"
}

resource "google_project_iam_member" "deployer" {
  for_each = local.deployer_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

# Project IAM bindings, limited to the roles terraform/ grants.
resource "google_project_iam_member" "deployer_project_iam" {
  project = var.project_id
  role    = "roles/resourcemanager.projectIamAdmin"
  member  = "serviceAccount:${google_service_account.deployer.email}"

  condition {
    title       = "only-the-runtime-roles"
    description = "The project roles terraform/ grants, nothing else."
    expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(${jsonencode(local.grantable_project_roles)})"
  }
}

# The main root's accounts (<name_prefix>-*): create, update, delete. Creating is checked
# on the project, everything else on the account, which must carry the prefix.
resource "google_project_iam_member" "deployer_accounts" {
  #checkov:skip=CKV_GCP_49: creates the runtime accounts terraform/ declares; the condition limits the rest to <name_prefix>-* accounts
  project = var.project_id
  role    = "roles/iam.serviceAccountAdmin"
  member  = "serviceAccount:${google_service_account.deployer.email}"

  condition {
    title       = "name-prefix-accounts"
    description = "Create accounts; manage only the <name_prefix>-* ones."
    expression  = "resource.type == \"cloudresourcemanager.googleapis.com/Project\" || resource.name.startsWith(\"projects/${var.project_id}/serviceAccounts/${var.name_prefix}-\")"
  }
}

# Deploying a function or the job as one of the main root's accounts needs actAs on it:
# limited to the accounts named after name_prefix.
resource "google_project_iam_member" "deployer_act_as" {
  #checkov:skip=CKV_GCP_41: actAs on the runtime accounts terraform/ creates and deploys as; the condition limits it to <name_prefix>-* accounts
  #checkov:skip=CKV_GCP_49: same: actAs only on the <name_prefix>-* accounts (condition)
  project = var.project_id
  role    = "roles/iam.serviceAccountUser"
  member  = "serviceAccount:${google_service_account.deployer.email}"

  condition {
    title       = "name-prefix-accounts"
    description = "Only the accounts terraform/ creates."
    expression  = "resource.name.startsWith(\"projects/${var.project_id}/serviceAccounts/${var.name_prefix}-\")"
  }
}

# Which GitHub environment may act as which account.
resource "google_service_account_iam_member" "planner_wif" {
  service_account_id = google_service_account.planner.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.environment/${local.plan_environment}"
}

resource "google_service_account_iam_member" "deployer_wif" {
  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.environment/${var.environment}"
}

# The state: private, versioned. The planner reads it (plan -lock=false), the deployer
# writes it. terraform/ writes no generated secret into it (write-only arguments); the
# Upstash REST token is the one secret it still holds (terraform/README.md "Secrets").
resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62: a log bucket for the state bucket adds cost without signal; Data Access audit logs record object reads
  project                     = var.project_id
  name                        = var.state_bucket
  location                    = var.state_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.bootstrap]
}

resource "google_storage_bucket_iam_member" "state_planner" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.planner.email}"
}

resource "google_storage_bucket_iam_member" "state_deployer" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.deployer.email}"
}
