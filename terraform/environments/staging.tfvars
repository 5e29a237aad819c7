# terraform plan -var-file=environments/staging.tfvars  (state: backend prefix .../staging)
# Upstash credentials: TF_VAR_upstash_email / TF_VAR_upstash_api_key, never here.
project_id  = "acme-reel-staging"
region      = "europe-west1"
name_prefix = "reel-stg"
environment = "staging"

# No warm instances; small maxima keep the connection budget inside a small instance:
# sum(max instances) = 2 x 12 = 24, x db_pool_size 4 = 96, + 20 reserved <= 120.
hot_min_instances = 0
max_instances = {
  create         = 2
  regenerate     = 2
  generations    = 2
  drafts         = 2
  library        = 2
  usage          = 2
  me             = 2
  admin          = 2
  billing        = 2
  stripe-webhook = 2
  health         = 2
  worker         = 2
}

use_cloud_sql           = true
sql_tier                = "db-custom-1-3840"
sql_availability_type   = "ZONAL"
sql_max_connections     = 120
sql_deletion_protection = true

upstash_primary_region = "eu-west-1"

# Versions added out of band (gcloud secrets versions add reel-stg-qstash-token ...).
secret_versions = {
  QSTASH_TOKEN               = "1"
  QSTASH_CURRENT_SIGNING_KEY = "1"
  QSTASH_NEXT_SIGNING_KEY    = "1"
  AI_API_KEY                 = "1"
  STRIPE_SECRET_KEY          = "1"
  STRIPE_WEBHOOK_SECRET      = "1"
}

auth_jwks_url        = "https://auth.staging.example.com/.well-known/jwks.json"
auth_issuer          = "https://auth.staging.example.com/"
auth_audience        = "reel-content-api"
cors_allowed_origins = ["https://staging.app.example.com"]
log_level            = "DEBUG"

stripe_price_ids = {
  basic     = "price_test_basic"
  standard  = "price_test_standard"
  pro       = "price_test_pro"
  pro_boost = "price_test_pro_boost"
}
stripe_success_url = "https://staging.app.example.com/billing/success"
stripe_cancel_url  = "https://staging.app.example.com/billing/cancel"

alert_notification_channels = []
