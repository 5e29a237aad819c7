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
      description = "SPEC error code (e.g. MONTHLY_QUOTA_EXCEEDED, PROVIDER_BUSY)."
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
  description = "HTTP 429 / rate-limit answers from the AI provider (AI_PROVIDER; label provider)."
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

resource "google_logging_metric" "provider_fallbacks" {
  project     = var.project_id
  name        = "${var.name_prefix}/provider_fallbacks"
  description = "Jobs sent to the fallback AI provider (event provider_fallback): reason circuit_open or primary_failed; outcome succeeded, failed or busy. Divided by jobs_finished it is the fallback rate."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"provider_fallback\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "circuit_open (the AI provider not called) or primary_failed (the AI provider failed past its retries)."
    }

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "What the fallback provider did: succeeded, failed or busy (its lane was full)."
    }
  }

  label_extractors = {
    reason  = "EXTRACT(jsonPayload.reason)"
    outcome = "EXTRACT(jsonPayload.outcome)"
  }
}

resource "google_logging_metric" "circuit_state" {
  project     = var.project_id
  name        = "${var.name_prefix}/circuit_state"
  description = "Changes of the AI provider's circuit breaker (event circuit_state), by the state entered: open, half_open (one trial call) or closed."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"circuit_state\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "state"
      value_type  = "STRING"
      description = "The state entered: open, half_open or closed."
    }
  }

  label_extractors = {
    state = "EXTRACT(jsonPayload.state)"
  }
}

resource "google_logging_metric" "usage_notices" {
  project     = var.project_id
  name        = "${var.name_prefix}/usage_notices"
  description = "Usage notices handed to QStash for the operator webhook, or failed to, by kind."
  filter      = "${local.functions_log_filter} AND (jsonPayload.event=\"notice_published\" OR jsonPayload.event=\"notice_publish_failed\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "event"
      value_type  = "STRING"
      description = "notice_published or notice_publish_failed."
    }
  }

  label_extractors = {
    event = "EXTRACT(jsonPayload.event)"
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

# A log-based metric can take up to 10 minutes to become visible to alert policies:
# created right after it, a policy fails with 404 "Cannot find metric(s)" (provider issue
# 11102). Every alert policy depends on this wait; a new metric replaces it (triggers), so
# policies added with it wait too. On a first apply it runs alongside Cloud SQL's creation.
resource "time_sleep" "log_metrics" {
  create_duration = "600s"

  triggers = {
    metrics = join(",", sort(concat(
      [
        google_logging_metric.limit_rejections.name,
        google_logging_metric.provider_rate_limited.name,
        google_logging_metric.provider_fallbacks.name,
        google_logging_metric.circuit_state.name,
        google_logging_metric.requests.name,
        google_logging_metric.http_5xx.name,
        google_logging_metric.request_latency.name,
        google_logging_metric.jobs_finished.name,
        google_logging_metric.admissions.name,
        google_logging_metric.spend_anomalies.name,
        google_logging_metric.usage_notices.name,
      ],
      [for m in google_logging_metric.job_latency : m.name],
    )))
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

  depends_on = [time_sleep.log_metrics]
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

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "provider_fallback" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): AI provider fallback"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "The AI provider's circuit opened (enough failed jobs within CIRCUIT_WINDOW_S), or more than ${var.alert_fallback_ratio * 100}% of finished jobs ran on the fallback provider over 15 minutes. Jobs keep succeeding on the fallback (ledger rows name it); check the AI provider's (AI_PROVIDER) status and the `provider_attempt` log lines (http_status, base_code). The circuit closes by itself after a successful trial call (every CIRCUIT_COOLDOWN_S)."
  }

  conditions {
    display_name = "AI provider circuit opened"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.circuit_state.name}\" AND metric.label.\"state\"=\"open\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
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

  conditions {
    display_name = "fallbacks / finished jobs > ${var.alert_fallback_ratio}"

    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.provider_fallbacks.name}\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_fallback_ratio
      duration           = "0s"

      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "900s"
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

  depends_on = [time_sleep.log_metrics]
}

# ---------------------------------------------------------------------------------------
# Jobs, admissions and spend (SPEC §10)
# ---------------------------------------------------------------------------------------

resource "google_logging_metric" "jobs_finished" {
  project     = var.project_id
  name        = "${var.name_prefix}/jobs_finished"
  description = "Generation jobs reaching a terminal status: event job_completed, job_failed (with its code; TIMED_OUT = failed by the sweeper) or job_cancelled (code CANCELLED)."
  filter      = "${local.functions_log_filter} AND (jsonPayload.event=\"job_completed\" OR jsonPayload.event=\"job_failed\" OR jsonPayload.event=\"job_cancelled\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "The log event: job_completed, job_failed or job_cancelled."
    }
    labels {
      key         = "code"
      value_type  = "STRING"
      description = "Failure code (e.g. TIMED_OUT, DELIVERY_FAILED, PROVIDER_BAD_OUTPUT), CANCELLED for a cancel; empty on success."
    }
  }

  label_extractors = {
    outcome = "EXTRACT(jsonPayload.event)"
    code    = "EXTRACT(jsonPayload.code)"
  }
}

resource "google_logging_metric" "admissions" {
  project     = var.project_id
  name        = "${var.name_prefix}/admissions"
  description = "Admitted generations (stored and enqueued: event job_queued), by kind."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"job_queued\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "create, regen_targeted or regen_full."
    }
  }

  label_extractors = {
    kind = "EXTRACT(jsonPayload.kind)"
  }
}

resource "google_logging_metric" "spend_anomalies" {
  project     = var.project_id
  name        = "${var.name_prefix}/spend_anomalies"
  description = "Users whose day cost exceeded SPEND_ALERT_USD and 5x their trailing 7-day median (event spend_anomaly of the daily rollup)."
  filter      = "${local.functions_log_filter} AND jsonPayload.event=\"spend_anomaly\""

  # No user label: one time series per user would be unbounded cardinality; the log
  # line names the user (jsonPayload.user_id).
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

locals {
  # Every metric the dashboard template may name, as ${metrics.<key>}.
  dashboard_metrics = {
    requests              = google_logging_metric.requests.name
    http_5xx              = google_logging_metric.http_5xx.name
    provider_rate_limited = google_logging_metric.provider_rate_limited.name
    provider_fallbacks    = google_logging_metric.provider_fallbacks.name
    circuit_state         = google_logging_metric.circuit_state.name
    jobs_finished         = google_logging_metric.jobs_finished.name
    enqueue_to_start_ms   = google_logging_metric.job_latency["enqueue_to_start_ms"].name
    spend_anomalies       = google_logging_metric.spend_anomalies.name
    admissions            = google_logging_metric.admissions.name
    limit_rejections      = google_logging_metric.limit_rejections.name
  }
}

resource "google_monitoring_alert_policy" "job_failure_ratio" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): job failure ratio"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.alert_job_failure_ratio * 100}% of generation jobs failed over 15 minutes. Group `${google_logging_metric.jobs_finished.name}` by `code`: PROVIDER_* codes point at the AI provider (status, balance, content policy), TIMED_OUT at stuck workers, DELIVERY_FAILED at QStash or the worker answering 5xx. Failed jobs are refunded."
  }

  conditions {
    display_name = "failed / finished jobs > ${var.alert_job_failure_ratio}"

    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}\" AND metric.label.outcome=\"job_failed\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_job_failure_ratio
      duration           = "900s"

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
    auto_close = "3600s"
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "sweeper_timeouts" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): sweeper time-outs"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "The sweeper failed (and refunded) more than ${var.alert_sweeper_timeouts_per_hour} generations in an hour because they were stuck past MAX_JOB_RUNTIME_S (running) or the lease TTL (queued). Workers are dying mid-job (memory, timeouts) or QStash is not delivering: look at the worker's logs around jsonPayload.event=\"sweep_finished\"."
  }

  conditions {
    display_name = "TIMED_OUT jobs per hour > ${var.alert_sweeper_timeouts_per_hour}"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.jobs_finished.name}\" AND metric.label.code=\"TIMED_OUT\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_sweeper_timeouts_per_hour
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "7200s"
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "enqueue_to_start_p95" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): queue delay p95"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "The 95th percentile of enqueue to worker start exceeded ${var.alert_enqueue_to_start_p95_ms} ms for 10 minutes: users wait in the queue. Check QStash delivery (retries, 503 \"running elsewhere\"), the worker's max instances and the provider concurrency caps."
  }

  conditions {
    display_name = "enqueue to start p95 > ${var.alert_enqueue_to_start_p95_ms} ms"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.job_latency["enqueue_to_start_ms"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_enqueue_to_start_p95_ms
      duration        = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "spend_anomaly" {
  project               = var.project_id
  display_name          = "Reel Content (${var.environment}): spend anomaly"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  documentation {
    mime_type = "text/markdown"
    content   = "The daily rollup found a user whose day cost exceeded SPEND_ALERT_USD (${var.spend_alert_usd} USD) and 5x their trailing 7-day median. The log line (jsonPayload.event=\"spend_anomaly\") names the user and day; `python -m shared.ops.costs --from DAY --to DAY --group-by user,model` shows the detail."
  }

  conditions {
    display_name = "spend_anomaly events > 0"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.spend_anomalies.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
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
    # One event a day at most per user: keep the incident open until the next rollup.
    auto_close = "86400s"
  }

  depends_on = [time_sleep.log_metrics]
}

# ---------------------------------------------------------------------------------------
# Dashboard: the alerts' signals plus admissions and rejections by code. The JSON lives
# in a template so tests/integration/test_terraform.py can parse it and check that every
# chart names a metric defined above.
# ---------------------------------------------------------------------------------------

resource "google_monitoring_dashboard" "operations" {
  project = var.project_id
  dashboard_json = templatefile("${path.module}/dashboards/operations.json.tftpl", {
    environment = var.environment
    metrics     = local.dashboard_metrics
  })
}
