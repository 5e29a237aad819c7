# Log-based metrics over the functions' JSON log lines (shared/observability/logging.py:
# severity, message, event, code, route, status, latency_ms, ... land in jsonPayload),
# and alert policies on them. Gen2 functions log as Cloud Run revisions.

locals {
  functions_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for name in values(local.function_names) : "\"${name}\""])})",
  ])

  # Job timings logged by the worker on event "job_completed" (milliseconds).
  job_latency_fields = {
    enqueue_to_complete_ms = "Enqueue to terminal status (what the user waits)"
    enqueue_to_start_ms    = "Enqueue to the worker starting the job (queue delay)"
    start_to_complete_ms   = "Worker start to terminal status (provider call and writes)"
  }

  # 10 ms x 1.5^i, i = 0..32: 10 ms to ~72 min, fine enough at the sub-second API end
  # and wide enough for jobs that queue behind QStash retries.
  latency_buckets = {
    num_finite_buckets = 32
    growth_factor      = 1.5
    scale              = 10
  }
}

# ---------------------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------------------

resource "google_logging_metric" "limit_rejections" {
  project     = var.project_id
  name        = "${var.name_prefix}/limit_rejections"
  description = "Requests refused by a limit (429s and PROVIDER_BUSY), by error code."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"limit_rejected\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "code"
      value_type  = "STRING"
      description = "SPEC error code (e.g. MONTHLY_LIMIT_REACHED, PROVIDER_BUSY)."
    }
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (function) name."
    }
  }

  label_extractors = {
    code     = "EXTRACT(jsonPayload.code)"
    function = "EXTRACT(resource.labels.service_name)"
  }
}

resource "google_logging_metric" "provider_rate_limited" {
  project     = var.project_id
  name        = "${var.name_prefix}/provider_rate_limited"
  description = "HTTP 429 / rate-limit answers from the AI provider (MiniMax)."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"provider_rate_limited\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (function) name."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }
}

resource "google_logging_metric" "requests" {
  project     = var.project_id
  name        = "${var.name_prefix}/requests"
  description = "Finished HTTP requests (the canonical request_finished line)."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"request_finished\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (function) name."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
  }
}

resource "google_logging_metric" "http_5xx" {
  project     = var.project_id
  name        = "${var.name_prefix}/http_5xx"
  description = "Requests answered with a 5xx status, by function and route."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"request_finished\" AND jsonPayload.status>=500"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (function) name."
    }
    labels {
      key         = "route"
      value_type  = "STRING"
      description = "Route pattern (e.g. /v1/drafts/{id}); empty when no route matched."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
    route    = "EXTRACT(jsonPayload.route)"
  }
}

# ---------------------------------------------------------------------------------------
# Latency distributions
# ---------------------------------------------------------------------------------------

resource "google_logging_metric" "request_latency" {
  project         = var.project_id
  name            = "${var.name_prefix}/request_latency_ms"
  description     = "Handler latency of every request, by function, route and status."
  filter          = "${local.functions_log_filter} AND jsonPayload.event=\"request_finished\""
  value_extractor = "EXTRACT(jsonPayload.latency_ms)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"

    labels {
      key         = "function"
      value_type  = "STRING"
      description = "Cloud Run service (function) name."
    }
    labels {
      key         = "route"
      value_type  = "STRING"
      description = "Route pattern (e.g. /v1/drafts/{id})."
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status code."
    }
  }

  label_extractors = {
    function = "EXTRACT(resource.labels.service_name)"
    route    = "EXTRACT(jsonPayload.route)"
    status   = "EXTRACT(jsonPayload.status)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.latency_buckets.num_finite_buckets
      growth_factor      = local.latency_buckets.growth_factor
      scale              = local.latency_buckets.scale
    }
  }
}

resource "google_logging_metric" "job_latency" {
  for_each = local.job_latency_fields

  project         = var.project_id
  name            = "${var.name_prefix}/job_${each.key}"
  description     = "${each.value}, per generation job (event job_completed)."
  filter          = "${local.functions_log_filter} AND jsonPayload.event=\"job_completed\""
  value_extractor = "EXTRACT(jsonPayload.${each.key})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.latency_buckets.num_finite_buckets
      growth_factor      = local.latency_buckets.growth_factor
      scale              = local.latency_buckets.scale
    }
  }
}

# ---------------------------------------------------------------------------------------
# Alert policies (a sketch: thresholds per environment in tfvars, channels in
# var.alert_notification_channels)
# ---------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "http_5xx_ratio" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): 5xx ratio"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.alert_5xx_ratio * 100}% of requests answered 5xx over 5 minutes. Look at the `${google_logging_metric.http_5xx.name}` metric by route, then the function's logs (jsonPayload.event=\"unhandled_error\"); 503s usually mean Postgres or Redis is unreachable (/readyz)."
  }

  conditions {
    display_name = "5xx / requests > ${var.alert_5xx_ratio}"

    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.http_5xx.name}\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.requests.name}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_5xx_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "provider_rate_limited" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): AI provider 429s"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "The AI provider answered 429 more than ${var.alert_provider_429_per_5m} times in 5 minutes: the provider concurrency caps (PROVIDER_CAP_INTERACTIVE / PROVIDER_CAP_BATCH) are above what the account allows, or the account's quota changed. Jobs retry with backoff; users see PROVIDER_BUSY if it persists."
  }

  conditions {
    display_name = "provider 429s per 5 min > ${var.alert_provider_429_per_5m}"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.provider_rate_limited.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_provider_429_per_5m
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }
}
