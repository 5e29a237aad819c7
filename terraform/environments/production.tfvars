# terraform plan -var-file=environments/production.tfvars  (state: backend prefix .../production)
# Upstash credentials: TF_VAR_upstash_email / TF_VAR_upstash_api_key, never here.
project_id  = "acme-reel-prod"
region      = "europe-west1"
name_prefix = "reel"
environment = "production"

# One warm instance for each interactive function (create, regenerate, generations).
# Connection budget with the registry's defaults (shared/registry.py): sum(max
# instances) = 63, x db_pool_size 4 = 252, + 20 reserved <= 300.
hot_min_instances = 1
max_instances     = {}

use_cloud_sql           = true
sql_tier                = "db-custom-2-7680"
sql_availability_type   = "REGIONAL"
sql_max_connections     = 300
sql_deletion_protection = true

upstash_primary_region = "eu-west-1"

# Bump a number after `gcloud secrets versions add ...` to roll the new value out.
secret_versions = {
  QSTASH_TOKEN               = "1"
  QSTASH_CURRENT_SIGNING_KEY = "1"
  QSTASH_NEXT_SIGNING_KEY    = "1"
  AI_API_KEY                 = "1"
  STRIPE_SECRET_KEY          = "1"
  STRIPE_WEBHOOK_SECRET      = "1"
}

auth_jwks_url        = "https://auth.example.com/.well-known/jwks.json"
auth_issuer          = "https://auth.example.com/"
auth_audience        = "reel-content-api"
cors_allowed_origins = ["https://app.example.com"]
log_level            = "INFO"

stripe_price_ids = {
  basic     = "price_basic"
  standard  = "price_standard"
  pro       = "price_pro"
  pro_boost = "price_pro_boost"
}
stripe_success_url = "https://app.example.com/billing/success"
stripe_cancel_url  = "https://app.example.com/billing/cancel"

# alert_notification_channels comes from the production deploy environment
# (TF_VAR_alert_notification_channels, .github/workflows/deploy.yml): required, no default.
alert_5xx_ratio           = 0.02
alert_provider_429_per_5m = 20
