# ---------------------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------------------

variable "project_id" {
  description = "GCP project that hosts the functions, secrets, database and gateway."
  type        = string
}

variable "region" {
  description = "Region of the functions, Cloud SQL and the VPC connector."
  type        = string
  default     = "europe-west1"
}

variable "gateway_region" {
  description = "Region of the API Gateway (a subset of regions offer it); null = var.region."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of every resource name; one per environment (e.g. reel-stg, reel)."
  type        = string
  default     = "reel"

  validation {
    # The tightest names built from it: service account ids (6-30 chars,
    # "<prefix>-<function>", function names of 2-15 chars in shared/registry.py).
    condition     = can(regex("^[a-z][a-z0-9-]{2,13}$", var.name_prefix))
    error_message = "name_prefix: 3-14 chars, lowercase letters, digits and dashes."
  }
}

variable "environment" {
  description = "Deployment label (staging or production). APP_ENV is production in both."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "public_invokers" {
  description = <<-EOT
    true: every function is invocable by allUsers and authenticates each request in code.
    false: no allUsers binding on the API, health and Stripe webhook functions (they are
    invoked only by the gateway's account, the caller's token in X-Forwarded-Authorization);
    for organisations whose domain-restricted sharing policy refuses allUsers
    (terraform/README.md "A fresh organisation"). The worker stays public either way:
    QStash cannot sign in.
  EOT
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels for every labelled resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------
# Functions sizing
# ---------------------------------------------------------------------------------------

variable "hot_min_instances" {
  description = "min_instance_count of the interactive functions (registry hot=True); 0 in staging."
  type        = number
  default     = 0

  validation {
    condition     = var.hot_min_instances >= 0 && var.hot_min_instances <= 5
    error_message = "hot_min_instances must be between 0 and 5."
  }
}

variable "max_instances" {
  description = "Per-function max_instance_count overrides (function name => count)."
  type        = map(number)
  default     = {}
}

variable "db_pool_size" {
  description = "Postgres connections one function instance may hold (shared.db.Database pool)."
  type        = number
  default     = 4
}

# ---------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------

variable "secret_versions" {
  description = <<-EOT
    Numeric Secret Manager version of every secret whose value is added out of band
    (env var name => version), e.g. { QSTASH_TOKEN = "3" }. Pinned, never "latest":
    a function reads its secrets when an instance starts, so "latest" would let one
    deployment run with two values at once, and rotating would not redeploy.
  EOT
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.secret_versions) : can(regex("^[1-9][0-9]*$", v))])
    error_message = "secret_versions: every version must be a number (no \"latest\")."
  }

  validation {
    # AUTH_HS256_SECRET is development-only: production refuses to start with it.
    condition     = !contains(keys(var.secret_versions), "AUTH_HS256_SECRET")
    error_message = "AUTH_HS256_SECRET is development-only and is never deployed."
  }
}

variable "cursor_secret_version" {
  description = "Version of the generated, write-only CURSOR_SECRET; bump to rotate it."
  type        = number
  default     = 1
}

# ---------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------

variable "use_cloud_sql" {
  description = "true: Cloud SQL Postgres 16 on a private IP; false: external DATABASE_URL secret."
  type        = bool
  default     = true
}

variable "vpc_connector_cidr" {
  description = "Unused /28 in the functions' VPC network for the Serverless VPC Access connector."
  type        = string
  default     = "10.8.0.0/28"
}

variable "sql_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "sql_availability_type" {
  description = "ZONAL or REGIONAL (high availability)."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_max_connections" {
  description = "Postgres max_connections flag; must cover sum(max instances) x db_pool_size."
  type        = number
  default     = 300
}

variable "migrate_image" {
  description = "Container image of the migration job: the functions' Python (python311 runtime = 3.11)."
  type        = string
  default     = "mirror.gcr.io/library/python:3.11-slim"
}

variable "sql_password_version" {
  description = "Version of the database users' write-only passwords; bump to rotate them (and the DATABASE_URL secrets)."
  type        = number
  default     = 1
}

variable "sql_deletion_protection" {
  description = "Protect the Cloud SQL instance from terraform destroy and API deletion."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------
# Upstash (Redis REST + QStash)
# ---------------------------------------------------------------------------------------

variable "upstash_email" {
  description = "Upstash account e-mail (management API); set TF_VAR_upstash_email."
  type        = string
  sensitive   = true
}

variable "upstash_api_key" {
  description = "Upstash management API key; set TF_VAR_upstash_api_key."
  type        = string
  sensitive   = true
}

variable "upstash_primary_region" {
  description = "Primary region of the global Upstash Redis database (nearest to var.region)."
  type        = string
  default     = "eu-west-1"
}

variable "qstash_url" {
  description = "QStash API base URL (the region of the QStash account)."
  type        = string
  default     = "https://qstash.upstash.io"
}

variable "qstash_retries" {
  description = "QStash delivery retries per job (bounded by the QStash plan)."
  type        = number
  default     = 3
}

variable "rollup_cron" {
  description = "Cron (UTC) of the signed QStash schedule that POSTs /worker/rollup (daily usage rollup)."
  type        = string
  # Shortly after midnight UTC: the day just closed is rolled up and checked for anomalies.
  default = "15 0 * * *"
}

variable "sweep_cron" {
  description = "Cron (UTC) of the signed QStash schedule that POSTs /worker/sweep."
  type        = string
  default     = "*/5 * * * *"
}

# ---------------------------------------------------------------------------------------
# Application settings (plain, non-secret environment variables; SPEC section 6)
# ---------------------------------------------------------------------------------------

variable "auth_jwks_url" {
  description = "AUTH_JWKS_URL: JWKS of the identity provider."
  type        = string
}

variable "auth_issuer" {
  description = "AUTH_ISSUER: expected iss claim."
  type        = string
}

variable "auth_audience" {
  description = "AUTH_AUDIENCE: expected aud claim."
  type        = string
}

variable "cors_allowed_origins" {
  description = "CORS_ALLOWED_ORIGINS (joined with commas)."
  type        = list(string)
  default     = []
}

variable "log_level" {
  description = "LOG_LEVEL."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "ai_model" {
  description = "AI_MODEL: the AI provider's model; empty: the provider's default (MiniMax-M2.5 for minimax)."
  type        = string
  default     = ""
}

variable "ai_base_url" {
  description = "AI_BASE_URL: the AI provider's API; empty: the provider's default (https://api.minimax.io for minimax)."
  type        = string
  default     = ""
}

variable "stripe_price_ids" {
  description = "STRIPE_PRICE_* price ids (not secret)."
  type = object({
    basic     = string
    standard  = string
    pro       = string
    pro_boost = string
    # Generation packs (one-off payments); "" leaves POST /v1/billing/packs/checkout 503.
    pack_50  = optional(string, "")
    pack_200 = optional(string, "")
  })
}

variable "stripe_success_url" {
  description = "STRIPE_SUCCESS_URL."
  type        = string
}

variable "stripe_cancel_url" {
  description = "STRIPE_CANCEL_URL."
  type        = string
}

# ---------------------------------------------------------------------------------------
# Optional features (off by default: nothing is set or mounted until configured)
# ---------------------------------------------------------------------------------------

variable "fallback_ai" {
  description = <<-EOT
    The second, OpenAI-compatible provider the worker falls back to while MiniMax is down
    (FALLBACK_AI_BASE_URL, FALLBACK_AI_MODEL, FALLBACK_AI_PROVIDER, FALLBACK_AI_PRICE_IN /
    _OUT in USD per million tokens, FALLBACK_RESERVE_S). base_url "" (the default) = off:
    the worker gets none of these and no FALLBACK_AI_API_KEY. On, FALLBACK_AI_API_KEY
    must have a pinned version in secret_versions.
  EOT
  type = object({
    base_url  = optional(string, "")
    model     = optional(string, "")
    provider  = optional(string, "openai-compatible")
    price_in  = optional(string, "")
    price_out = optional(string, "")
    reserve_s = optional(number, 60)
  })
  default = {}

  validation {
    condition     = var.fallback_ai.base_url == "" || startswith(var.fallback_ai.base_url, "https://")
    error_message = "fallback_ai.base_url must be an https:// URL (or \"\" for no fallback)."
  }

  validation {
    condition     = (var.fallback_ai.base_url == "") == (var.fallback_ai.model == "")
    error_message = "fallback_ai: base_url and model are set together or not at all."
  }

  validation {
    condition     = (var.fallback_ai.price_in == "") == (var.fallback_ai.price_out == "")
    error_message = "fallback_ai: price_in and price_out are set together or not at all."
  }

  validation {
    condition     = var.fallback_ai.reserve_s >= 1 && var.fallback_ai.reserve_s <= 3600
    error_message = "fallback_ai.reserve_s must be 1..3600 seconds."
  }
}

variable "circuit" {
  description = "MiniMax's circuit breaker in front of the fallback (CIRCUIT_FAILURES in CIRCUIT_WINDOW_S opens it for CIRCUIT_COOLDOWN_S); used only with fallback_ai."
  type = object({
    failures   = optional(number, 5)
    window_s   = optional(number, 60)
    cooldown_s = optional(number, 30)
  })
  default = {}

  validation {
    condition = (
      var.circuit.failures >= 1 && var.circuit.failures <= 1000 &&
      var.circuit.window_s >= 1 && var.circuit.window_s <= 3600 &&
      var.circuit.cooldown_s >= 1 && var.circuit.cooldown_s <= 3600
    )
    error_message = "circuit: failures 1..1000, window_s and cooldown_s 1..3600."
  }
}

variable "notice_webhook_url" {
  description = <<-EOT
    NOTICE_WEBHOOK_URL: the operator's endpoint for usage notices, published by the
    worker's sweep through QStash (docs/quota.md). "" (the default) = off: the worker gets
    neither this nor NOTICE_WEBHOOK_SECRET. On, NOTICE_WEBHOOK_SECRET must have a pinned
    version in secret_versions.
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.notice_webhook_url == "" || startswith(var.notice_webhook_url, "https://")
    error_message = "notice_webhook_url must be an https:// URL (or \"\" for none)."
  }
}

# ---------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------

variable "alert_notification_channels" {
  description = <<-EOT
    Monitoring notification channel ids of the alert policies
    (projects/<project>/notificationChannels/<id>). Required: production passes real
    channels from the deploy environment (TF_VAR_alert_notification_channels), never a
    placeholder in a tfvars file; staging may pass [].
  EOT
  type        = list(string)

  validation {
    condition = alltrue([
      for c in var.alert_notification_channels :
      can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+$", c))
    ])
    error_message = "alert_notification_channels: each must be projects/<project>/notificationChannels/<id>."
  }

  validation {
    condition     = var.environment != "production" || length(var.alert_notification_channels) > 0
    error_message = "alert_notification_channels: production needs at least one channel."
  }
}

variable "alert_5xx_ratio" {
  description = "Alert when 5xx answers exceed this fraction of requests over 5 minutes."
  type        = number
  default     = 0.05
}

variable "alert_provider_429_per_5m" {
  description = "Alert when the AI provider answers 429 more often than this in 5 minutes."
  type        = number
  default     = 20
}

variable "alert_fallback_ratio" {
  description = "Alert when more than this fraction of finished jobs ran on the fallback AI provider over 15 minutes."
  type        = number
  default     = 0.2
}

variable "alert_job_failure_ratio" {
  description = "Alert when failed jobs exceed this fraction of finished jobs over 15 minutes."
  type        = number
  default     = 0.2
}

variable "alert_sweeper_timeouts_per_hour" {
  description = "Alert when the sweeper times out more jobs than this in an hour."
  type        = number
  default     = 5
}

variable "alert_enqueue_to_start_p95_ms" {
  description = "Alert when the p95 queue delay (enqueue to worker start) exceeds this for 10 minutes."
  type        = number
  default     = 30000
}

variable "spend_alert_usd" {
  description = "SPEND_ALERT_USD: a user's day cost above this (and 5x their trailing 7-day median) is a spend anomaly."
  type        = number
  default     = 5
}
