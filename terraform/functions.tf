# One Cloud Function (2nd gen) per entry of terraform/functions.json (generated from
# shared/registry.py), each from the zip `make package` built for it
# (build/functions/<name>.zip; scripts/package.py is the one definition of its files).
# The object is named after the zip's SHA-256 and the zips are reproducible, so a plan
# redeploys exactly the functions whose zip changed. Run `make package` before planning.

locals {
  # Plain environment variables: configuration only. Secrets are never here; they are
  # mounted from Secret Manager below (secrets.tf). AUTH_HS256_SECRET is never deployed.
  plain_env = {
    APP_ENV                = "production"
    QUEUE_BACKEND          = "qstash"
    AI_PROVIDER            = "minimax"
    AI_MODEL               = var.ai_model
    AI_BASE_URL            = var.ai_base_url
    UPSTASH_REDIS_REST_URL = local.upstash_rest_url
    QSTASH_URL             = var.qstash_url
    QSTASH_RETRIES         = tostring(var.qstash_retries)
    WORKER_URL             = local.worker_url
    AUTH_JWKS_URL          = var.auth_jwks_url
    AUTH_ISSUER            = var.auth_issuer
    AUTH_AUDIENCE          = var.auth_audience
    CORS_ALLOWED_ORIGINS   = join(",", var.cors_allowed_origins)
    LOG_LEVEL              = var.log_level
    STRIPE_PRICE_BASIC     = var.stripe_price_ids.basic
    STRIPE_PRICE_STANDARD  = var.stripe_price_ids.standard
    STRIPE_PRICE_PRO       = var.stripe_price_ids.pro
    STRIPE_PRICE_PRO_BOOST = var.stripe_price_ids.pro_boost
    STRIPE_PRICE_PACK_50   = var.stripe_price_ids.pack_50
    STRIPE_PRICE_PACK_200  = var.stripe_price_ids.pack_200
    STRIPE_SUCCESS_URL     = var.stripe_success_url
    STRIPE_CANCEL_URL      = var.stripe_cancel_url
    SPEND_ALERT_USD        = tostring(var.spend_alert_usd)
    # Behind a private function the gateway's ID token is in Authorization and the
    # caller's bearer token in X-Forwarded-Authorization (public_invokers = false).
    AUTH_HEADER = var.public_invokers ? "Authorization" : "X-Forwarded-Authorization"
  }

  # Plain settings of the optional needs (shared/needs.py OPTIONAL_NEEDS), set only on
  # the functions that have the need and only while it is on (local.optional_needs_on,
  # secrets.tf): off, the function sees none of them and behaves as without the feature.
  need_env = {
    ai_fallback = merge(
      {
        FALLBACK_AI_BASE_URL = var.fallback_ai.base_url
        FALLBACK_AI_MODEL    = var.fallback_ai.model
        FALLBACK_AI_PROVIDER = var.fallback_ai.provider
        FALLBACK_RESERVE_S   = tostring(var.fallback_ai.reserve_s)
        CIRCUIT_FAILURES     = tostring(var.circuit.failures)
        CIRCUIT_WINDOW_S     = tostring(var.circuit.window_s)
        CIRCUIT_COOLDOWN_S   = tostring(var.circuit.cooldown_s)
      },
      # Unset (the built-in price, if any) unless both are given.
      {
        for k, v in {
          FALLBACK_AI_PRICE_IN  = var.fallback_ai.price_in
          FALLBACK_AI_PRICE_OUT = var.fallback_ai.price_out
        } : k => v if v != ""
      },
    )
    notices = {
      NOTICE_WEBHOOK_URL = var.notice_webhook_url
    }
  }

  # function => its optional plain settings (empty for most).
  function_env = {
    for name, fn in local.functions : name => merge({}, [
      for need in fn.needs : tomap(local.need_env[need]) if lookup(local.optional_needs_on, need, false)
    ]...)
  }
}

resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  bucket = google_storage_bucket.sources.name
  name   = "${each.key}/${filesha256("${local.package_dir}/${each.key}.zip")}.zip"
  source = "${local.package_dir}/${each.key}.zip"
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124: callers are browsers via API Gateway, QStash and Stripe (none internal); every request is authenticated in code
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = local.function_names[each.key]
  description = "Reel Content ${each.key} (functions/${each.value.module}.py, auth: ${each.value.auth})"
  labels      = local.labels

  build_config {
    runtime           = "python311"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_s
    max_instance_count               = local.max_instances[each.key]
    min_instance_count               = each.value.hot ? var.hot_min_instances : 0
    max_instance_request_concurrency = each.value.concurrency
    # Callers are browsers (through the gateway), QStash and Stripe: all on the internet.
    # Each function authenticates every request in code (see iam.tf).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.fn[each.key].email

    # Cloud SQL is reached on its private IP through the connector; everything else
    # (Upstash, QStash, the AI provider, Stripe, JWKS) goes straight to the internet.
    vpc_connector                 = var.use_cloud_sql ? google_vpc_access_connector.functions[0].id : null
    vpc_connector_egress_settings = var.use_cloud_sql ? "PRIVATE_RANGES_ONLY" : null

    # APP_FUNCTION: the function checks at start-up only the settings it needs.
    environment_variables = merge(local.plain_env, local.function_env[each.key], { APP_FUNCTION = each.key })

    # Only the secrets this function uses (least privilege), those of an optional need
    # only while it is on.
    dynamic "secret_environment_variables" {
      for_each = toset(local.function_secrets[each.key])
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = local.mount_secret_ids["${each.key}/${secret_environment_variables.key}"]
        version    = local.mount_versions["${each.key}/${secret_environment_variables.key}"]
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.missing_secret_versions) == 0
      error_message = "secret_versions has no pinned version for: ${join(", ", local.missing_secret_versions)} (add the value out of band first; see terraform/README.md \"Secrets\")."
    }
  }

  depends_on = [
    google_project_service.enabled,
    time_sleep.iam_propagation,
  ]
}
