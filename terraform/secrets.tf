# Secret Manager: one secret per secret environment variable. Each function mounts only
# the secrets its registry entry needs (functions.json "secrets"), at a pinned numeric
# version, and only that function's service account may read them (one IAM binding per
# function and secret, nothing project-wide).
#
# "managed" secrets get their versions from Terraform (it knows the value: the Upstash
# REST token, the generated cursor secret, the Cloud SQL URL). The others are added out of
# band (gcloud secrets versions add ...) and pinned by number in var.secret_versions.
#
# Not deployed: AUTH_HS256_SECRET (development tokens; production refuses to start with
# it) and REDIS_URL (Redis is reached over Upstash REST, which wins when both are set).

locals {
  secrets = {
    DATABASE_URL               = { managed = var.use_cloud_sql }
    UPSTASH_REDIS_REST_TOKEN   = { managed = true }
    CURSOR_SECRET              = { managed = true }
    QSTASH_TOKEN               = { managed = false }
    QSTASH_CURRENT_SIGNING_KEY = { managed = false }
    QSTASH_NEXT_SIGNING_KEY    = { managed = false }
    MINIMAX_API_KEY            = { managed = false }
    STRIPE_SECRET_KEY          = { managed = false }
    STRIPE_WEBHOOK_SECRET      = { managed = false }
  }

  managed_secret_versions = merge(
    {
      UPSTASH_REDIS_REST_TOKEN = google_secret_manager_secret_version.upstash_rest_token.version
      CURSOR_SECRET            = google_secret_manager_secret_version.cursor_secret.version
    },
    # Zero or one entry (count), without a conditional whose two object types differ.
    { for v in google_secret_manager_secret_version.database_url : "DATABASE_URL" => v.version },
  )

  # function/secret => the grant: what each function's identity may read.
  secret_grants = {
    for g in flatten([
      for name, fn in local.functions : [for secret in fn.secrets : { function = name, secret = secret }]
    ]) : "${g.function}/${g.secret}" => g
  }

  out_of_band_secrets = sort([for name, s in local.secrets : name if !s.managed])

  missing_secret_versions = [
    for name in local.out_of_band_secrets : name if !contains(keys(var.secret_versions), name)
  ]

  secret_versions = merge(
    { for name in local.out_of_band_secrets : name => lookup(var.secret_versions, name, "0") },
    local.managed_secret_versions,
  )
}

resource "google_secret_manager_secret" "app" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = "${var.name_prefix}-${lower(replace(each.key, "_", "-"))}"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "functions" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = google_secret_manager_secret.app[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

# ---------------------------------------------------------------------------------------
# Versions Terraform writes (their values are in the state: keep the state bucket private)
# ---------------------------------------------------------------------------------------

resource "google_secret_manager_secret_version" "upstash_rest_token" {
  secret      = google_secret_manager_secret.app["UPSTASH_REDIS_REST_TOKEN"].id
  secret_data = upstash_redis_database.main.rest_token
}

# Keys the opaque, tamper-evident library cursors. Rotating it (taint the random_password)
# only invalidates cursors that clients hold at that moment.
resource "random_password" "cursor_secret" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret_version" "cursor_secret" {
  secret      = google_secret_manager_secret.app["CURSOR_SECRET"].id
  secret_data = random_password.cursor_secret.result
}

resource "google_secret_manager_secret_version" "database_url" {
  count = var.use_cloud_sql ? 1 : 0

  secret      = google_secret_manager_secret.app["DATABASE_URL"].id
  secret_data = local.cloud_sql_database_url
}
