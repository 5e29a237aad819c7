# Shared locals, the project, the APIs it needs, and the build plumbing (source bucket,
# Artifact Registry repository, build service account).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  repo_root = abspath("${path.module}/..")

  labels = merge(var.labels, {
    app         = "reel-content"
    environment = var.environment
    managed-by  = "terraform"
  })

  # The registry (shared/registry.py) is the one source of what is deployed: module,
  # entry point, auth, sizing and the secrets of every function come from functions.json,
  # which `make functions-json` generates from it (a test keeps the two equal).
  functions = jsondecode(file("${path.module}/functions.json")).functions

  # The zips `make package` builds (scripts/package.py decides what each one holds).
  package_dir = "${local.repo_root}/build/functions"

  max_instances = {
    for name, fn in local.functions : name => lookup(var.max_instances, name, fn.max_instances)
  }

  function_names = { for name, fn in local.functions : name => "${var.name_prefix}-${name}" }

  # The worker's deterministic Cloud Run URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app).
  # QStash signs the exact destination URL and the worker checks the signature against
  # WORKER_URL, so every function (the worker included) must agree on it before any function
  # exists: referencing google_cloudfunctions2_function.fn["worker"] from the same resource
  # would be a cycle.
  worker_url = "https://${local.function_names["worker"]}-${data.google_project.this.number}.${var.region}.run.app"

  # Connections Postgres keeps for superusers, migrations and maintenance.
  sql_reserved_connections = 20
  sql_connection_budget    = sum(values(local.max_instances)) * var.db_pool_size

  required_apis = toset([
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    # Project IAM bindings (google_project_iam_member) read and write the project policy.
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.required_apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------------------
# Build plumbing
# ---------------------------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62: build inputs only; object access is already in Cloud Audit Logs (Data Access) and a log bucket per env adds cost without signal
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-fn-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Zips are read once, at build time; old ones only serve a manual rollback.
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84: images hold only the public-repo code and pinned dependencies, no data or secrets; Google-managed encryption at rest suffices
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Container images built from the Reel Content function sources."
  format        = "DOCKER"
  labels        = local.labels

  # Every deploy pushes a new image: delete images older than 30 days but always keep the
  # 10 most recent (KEEP wins over DELETE), enough for a rollback.
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.enabled]
}
