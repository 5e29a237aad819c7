# The sweeper: POST /worker/sweep every 5 minutes (fails and refunds generations stuck past
# the max job runtime, reclaims expired leases).
#
# Triggered by a QStash schedule, not Cloud Scheduler: QStash signs each delivery with
# Upstash-Signature like every other job, so the worker keeps exactly one way to
# authenticate callers and no Google OIDC verification path has to be added to it. The
# schedule's destination is the same WORKER_URL the worker verifies signatures against.
# Deliveries are at-least-once and the sweep is idempotent, so a retried or duplicated
# tick is harmless.

resource "upstash_qstash_schedule_v2" "sweep" {
  destination  = "${local.worker_url}/worker/sweep"
  cron         = var.sweep_cron
  method       = "POST"
  content_type = "application/json"
  body         = "{}"
  # A missed tick is made up by the next one five minutes later.
  retries = 0
}

# The daily usage rollup (SPEC §10): POST /worker/rollup recomputes the last closed days
# into usage_daily and logs spend_anomaly events, signed like the sweep. A run is
# idempotent and catches up from its watermark, so a missed or repeated tick is harmless;
# QStash retries a failed one.
resource "upstash_qstash_schedule_v2" "rollup" {
  destination  = "${local.worker_url}/worker/rollup"
  cron         = var.rollup_cron
  method       = "POST"
  content_type = "application/json"
  body         = "{}"
  retries      = 3
}
