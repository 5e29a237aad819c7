# Schema migrations: a Cloud Run job that runs `python -m shared.db.migrate` inside the
# functions' network (the VPC connector; Cloud SQL has only a private IP), as its own
# service account and its own database user (reel_migrate). The deploy workflow starts it
# and waits for it (`gcloud run jobs execute --wait`) before the functions change; nothing
# outside Google Cloud needs a route to the database.
#
# What it runs is build/migrate.zip (`make package`, scripts/package.py): shared/,
# schema.sql, migrations/ and requirements.txt = requirements.lock. The zip is uploaded to
# the sources bucket under its SHA-256 and mounted read-only (Cloud Storage volume); the
# container, the same Python as the functions' runtime, installs the locked tree
# (hash-checked) and migrates. A new zip updates the job; the next execution runs it.

locals {
  migrate_zip = "${local.repo_root}/build/migrate.zip"

  # reel_migrate's URL with Cloud SQL; with an external database, DATABASE_URL itself.
  migrate_url_secret = var.use_cloud_sql ? {
    id      = local.role_secret_ids["migrate"]
    version = local.role_secret_versions["migrate"]
    } : {
    id      = google_secret_manager_secret.app["DATABASE_URL"].secret_id
    version = local.secret_versions["DATABASE_URL"]
  }

  # pip --require-hashes installs exactly the lock the tests ran against; APP_ENV stays
  # unset (the migrator needs DATABASE_URL only, not the functions' production settings).
  migrate_script = <<-EOT
    set -eu
    python -m zipfile -e "$MIGRATE_ZIP" /tmp/app
    python -m pip install --quiet --no-cache-dir --disable-pip-version-check \
      --no-deps --require-hashes --target /tmp/deps -r /tmp/app/requirements.txt
    cd /tmp/app
    PYTHONPATH=/tmp/app:/tmp/deps exec python -m shared.db.migrate
  EOT
}

resource "google_service_account" "migrate" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-migrate"
  display_name = "Reel Content migrations job"

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "migrate_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.migrate.email}"
}

# Reads the zips (bucket-level, the sources bucket only).
resource "google_storage_bucket_iam_member" "migrate_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.migrate.email}"
}

# Reads its own database URL, nothing else.
resource "google_secret_manager_secret_iam_member" "migrate" {
  project   = var.project_id
  secret_id = local.migrate_url_secret.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.migrate.email}"
}

resource "google_storage_bucket_object" "migrate" {
  bucket = google_storage_bucket.sources.name
  name   = "jobs/migrate/${filesha256(local.migrate_zip)}.zip"
  source = local.migrate_zip
}

resource "google_cloud_run_v2_job" "migrate" {
  project             = var.project_id
  name                = "${var.name_prefix}-migrate"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.migrate.email
      timeout         = "900s"
      # A failed migration rolls back (one transaction per version); the deploy stops
      # and a person looks, rather than a retry repeating the failure.
      max_retries = 0

      containers {
        image   = var.migrate_image
        command = ["/bin/sh", "-c"]
        args    = [local.migrate_script]

        env {
          name  = "MIGRATE_ZIP"
          value = "/sources/${google_storage_bucket_object.migrate.name}"
        }
        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = local.migrate_url_secret.id
              version = local.migrate_url_secret.version
            }
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }

        volume_mounts {
          name       = "sources"
          mount_path = "/sources"
        }
      }

      volumes {
        name = "sources"
        gcs {
          bucket    = google_storage_bucket.sources.name
          read_only = true
        }
      }

      # Cloud SQL's private IP through the functions' connector; PyPI straight out.
      dynamic "vpc_access" {
        for_each = var.use_cloud_sql ? [google_vpc_access_connector.functions[0].id] : []
        content {
          connector = vpc_access.value
          egress    = "PRIVATE_RANGES_ONLY"
        }
      }
    }
  }

  # The users exist before the first run (applying the job with -target creates them):
  # migrations/0010_database_roles.sql grants reel_app and reel_readonly only if they do.
  depends_on = [
    google_project_service.enabled,
    google_sql_user.db,
    google_project_iam_member.migrate_logs,
    google_storage_bucket_iam_member.migrate_sources,
    google_secret_manager_secret_iam_member.migrate,
  ]
}
