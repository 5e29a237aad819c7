# Upstash Redis, used over its REST API (UPSTASH_REDIS_REST_URL + _TOKEN).
#
# New Upstash databases are global: one primary region (pick the one nearest var.region)
# and optional read regions. Eviction stays off: the keys are limit counters, leases and
# idempotency records, and evicting one would silently hand out capacity.

resource "upstash_redis_database" "main" {
  database_name  = "${var.name_prefix}-${var.environment}"
  region         = "global"
  primary_region = var.upstash_primary_region
  tls            = true
  eviction       = false
}

locals {
  # The provider exports the bare host name; the REST API is served over HTTPS on it.
  upstash_rest_url = "https://${upstash_redis_database.main.endpoint}"
}
