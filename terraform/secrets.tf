# Secret Manager: one secret per secret environment variable. Each function mounts only
# the secrets its registry entry needs (functions.json "secrets"), at a pinned numeric
# version, and only that function's service account may read them (one IAM binding per
# function and secret, nothing project-wide).
#
# "managed" secrets get their versions from Terraform (it knows the value: the Upstash
# REST token, the generated cursor secret, the Cloud SQL URLs). The generated ones are
# ephemeral and written through write-only arguments, so no password, URL or cursor key
# is in the state; the Upstash REST token is (the provider exports it as an attribute).
# The others are added out of band (gcloud secrets versions add ...) and pinned by
# number in var.secret_versions.
#
# Optional secrets name the optional need (shared/needs.py OPTIONAL_NEEDS) that uses them:
# the secret exists (so its version can be added first) but is mounted, granted and
# required in secret_versions only while that feature is on (local.optional_needs_on).
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
    STRIPE_SECRET_KEY          = { managed = false }
    STRIPE_WEBHOOK_SECRET      = { managed = false }
    FALLBACK_AI_API_KEY        = { managed = false, need = "ai_fallback" }
    NOTICE_WEBHOOK_SECRET      = { managed = false, need = "notices" }
    # The AI provider's key (AI_PROVIDER). It was MINIMAX_API_KEY before the AI settings
    # were named generically (issue 24); its Secret Manager id stays, so the secret and
    # its versions are kept (moved below), not replaced.
    AI_API_KEY = { managed = false, secret_id = "minimax-api-key" }
  }

  # Optional need => on (shared/needs.py OPTIONAL_NEEDS; the variables that turn them on).
  optional_needs_on = {
    ai_fallback = var.fallback_ai.base_url != ""
    notices     = var.notice_webhook_url != ""
  }

  # function => the secrets it mounts: its registry secrets plus those of its optional
  # needs that are on (functions.json "optional_secrets").
  function_secrets = {
    for name, fn in local.functions : name => sort(distinct(concat(
      fn.secrets,
      flatten([for need, names in fn.optional_secrets : names if local.optional_needs_on[need]]),
    )))
  }

  managed_secret_versions = merge(
    {
      UPSTASH_REDIS_REST_TOKEN = google_secret_manager_secret_version.upstash_rest_token.version
      CURSOR_SECRET            = google_secret_manager_secret_version.cursor_secret.version
    },
    # Zero or one entry (count), without a conditional whose two object types differ.
    { for role, v in google_secret_manager_secret_version.database_url : "DATABASE_URL" => v.version if role == "app" },
  )

  # The database URL secrets of the roles other than reel_app (Cloud SQL only).
  role_secret_ids      = { for role, s in google_secret_manager_secret.database_url_role : role => s.secret_id }
  role_secret_versions = { for role, v in google_secret_manager_secret_version.database_url : role => v.version }

  # Functions that only read the database connect as reel_readonly (sql.tf).
  readonly_functions = var.use_cloud_sql ? toset(["health"]) : toset([])

  # function/secret => the grant: what each function's identity may read.
  secret_grants = {
    for g in flatten([
      for name, secrets in local.function_secrets : [for secret in secrets : { function = name, secret = secret }]
    ]) : "${g.function}/${g.secret}" => g
  }

  # function/secret => the secret it mounts, and that secret's pinned version: the
  # DATABASE_URL of a read-only function is reel_readonly's URL.
  mount_secret_ids = {
    for key, g in local.secret_grants : key => (
      g.secret == "DATABASE_URL" && contains(local.readonly_functions, g.function)
      ? local.role_secret_ids["readonly"]
      : google_secret_manager_secret.app[g.secret].secret_id
    )
  }
  mount_versions = {
    for key, g in local.secret_grants : key => (
      g.secret == "DATABASE_URL" && contains(local.readonly_functions, g.function)
      ? local.role_secret_versions["readonly"]
      : local.secret_versions[g.secret]
    )
  }

  out_of_band_secrets = sort([
    for name, s in local.secrets : name if !s.managed && lookup(local.optional_needs_on, try(s.need, ""), true)
  ])

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
  secret_id = "${var.name_prefix}-${try(each.value.secret_id, lower(replace(each.key, "_", "-")))}"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

moved {
  from = google_secret_manager_secret.app["MINIMAX_API_KEY"]
  to   = google_secret_manager_secret.app["AI_API_KEY"]
}

moved {
  from = google_secret_manager_secret_iam_member.functions["worker/MINIMAX_API_KEY"]
  to   = google_secret_manager_secret_iam_member.functions["worker/AI_API_KEY"]
}

resource "google_secret_manager_secret_iam_member" "functions" {
  for_each = local.secret_grants

  project   = var.project_id
  secret_id = local.mount_secret_ids[each.key]
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

# The DATABASE_URL of reel_readonly (read-only functions) and reel_migrate (the migration
# job, migrate.tf); reel_app's is DATABASE_URL above.
resource "google_secret_manager_secret" "database_url_role" {
  for_each = { for role, user in local.sql_users : role => user if role != "app" }

  project   = var.project_id
  secret_id = "${var.name_prefix}-database-url-${each.key}"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# ---------------------------------------------------------------------------------------
# Versions Terraform writes. Generated values are ephemeral and written through
# write-only arguments (never in the state); bump the *_version variable to rotate.
# ---------------------------------------------------------------------------------------

resource "google_secret_manager_secret_version" "upstash_rest_token" {
  secret      = google_secret_manager_secret.app["UPSTASH_REDIS_REST_TOKEN"].id
  secret_data = upstash_redis_database.main.rest_token
}

# Keys the opaque, tamper-evident library cursors. Rotating it (bump
# cursor_secret_version) only invalidates cursors that clients hold at that moment.
ephemeral "random_password" "cursor_secret" {
  length  = 64
  special = false
}

resource "google_secret_manager_secret_version" "cursor_secret" {
  secret                 = google_secret_manager_secret.app["CURSOR_SECRET"].id
  secret_data_wo         = ephemeral.random_password.cursor_secret.result
  secret_data_wo_version = var.cursor_secret_version
}

resource "google_secret_manager_secret_version" "database_url" {
  for_each = local.sql_users

  secret                 = each.key == "app" ? google_secret_manager_secret.app["DATABASE_URL"].id : google_secret_manager_secret.database_url_role[each.key].id
  secret_data_wo         = local.cloud_sql_database_urls[each.key]
  secret_data_wo_version = var.sql_password_version
}

moved {
  from = google_secret_manager_secret_version.database_url[0]
  to   = google_secret_manager_secret_version.database_url["app"]
}

# The smoke client's secret at the identity provider (OAuth client credentials): the
# deploy workflow reads it with the deployer's credentials and mints a fresh token for
# each smoke run (scripts/smoke.py --client-credentials). No function reads it; the
# version is added out of band (terraform/README.md "Smoke").
resource "google_secret_manager_secret" "smoke_client_secret" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-smoke-client-secret"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
