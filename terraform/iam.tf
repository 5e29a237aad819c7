# Identities and who may call what.
#
# - fn[<function>]: one runtime identity per function (functions.json), so each holds only
#   its own permissions: write logs, metrics and traces, and read exactly the secrets its
#   registry entry needs (secrets.tf, one binding per function and secret). Nothing else:
#   Cloud SQL is reached with a password on its private IP (no cloudsql.client), Redis and
#   QStash over HTTPS with tokens. The health function cannot read the Stripe key.
# - build: the Cloud Build identity that turns a source zip into an image.
# - invokers: every function is public at the network level, because every caller is
#   outside Google (browsers, QStash, Stripe) and each function authenticates each request
#   in code. Functions not named in these bindings would stay private.

locals {
  runtime_roles = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
  ])

  runtime_grants = {
    for pair in setproduct(keys(local.functions), local.runtime_roles) :
    "${pair[0]} ${pair[1]}" => { function = pair[0], role = pair[1] }
  }

  # Gen2 builds copy the source into the gcf-v2-sources-<number>-<region> bucket that
  # Cloud Functions manages and build from there, so bucket-level grants on our sources
  # bucket are not enough (provider issue 20571); these are the roles of the provider's
  # "cloudfunctions2 basic builder" example, project-wide.
  build_roles = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectAdmin",
  ])
}

# Account ids are "<prefix>-<function>": name_prefix (<= 14) and the registry's names
# (<= 15) keep them within the 30 characters Google allows.
resource "google_service_account" "fn" {
  for_each = local.functions

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "Reel Content ${each.key} function"

  # iam.googleapis.com must be on before the first account is created (fresh project).
  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "runtime" {
  for_each = local.runtime_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-build"
  display_name = "Reel Content functions build"

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

# IAM is eventually consistent: a build or a revision started right after a grant can
# still be refused (the provider's example waits 60 s). The functions depend on this wait;
# new grants (a new function or secret) replace it, so they are waited for too.
resource "time_sleep" "iam_propagation" {
  create_duration = "60s"

  triggers = {
    build   = join(",", sort(local.build_roles))
    runtime = join(",", sort(keys(local.runtime_grants)))
    secrets = join(",", sort(keys(local.secret_grants)))
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.runtime,
    google_secret_manager_secret_iam_member.functions,
  ]
}

# ---------------------------------------------------------------------------------------
# Public invokers (gen2: roles/run.invoker on the underlying Cloud Run service; the
# cloudfunctions invoker role has no effect on 2nd gen functions)
# ---------------------------------------------------------------------------------------

locals {
  public_api_functions = {
    for name, fn in local.functions : name => fn if contains(["bearer", "none"], fn.auth)
  }
}

# API functions (auth "bearer"): every route verifies the caller's JWT in code (JWKS
# signature, issuer, audience, expiry; admin routes also the admin role) before touching
# data. health (auth "none"): /healthz, /readyz and /openapi.json expose no user data.
resource "google_cloud_run_service_iam_member" "public_api" {
  #checkov:skip=CKV_GCP_102: public API; each request is authenticated in code by its bearer JWT (shared/api/auth.py)
  for_each = local.public_api_functions

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# worker (auth "qstash"): QStash cannot mint Google ID tokens, so the worker is public and
# answers 401 to any request whose Upstash-Signature (HS256 JWT over the exact URL and the
# body hash, current or next signing key) does not verify. That covers /worker/generate,
# /worker/failed and the scheduled /worker/sweep (scheduler.tf).
resource "google_cloud_run_service_iam_member" "public_worker" {
  #checkov:skip=CKV_GCP_102: QStash cannot present Google credentials; the worker verifies Upstash-Signature on every request
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# stripe-webhook (auth "stripe"): Stripe cannot present Google credentials; the function
# answers 400 unless Stripe-Signature verifies against STRIPE_WEBHOOK_SECRET.
resource "google_cloud_run_service_iam_member" "public_stripe_webhook" {
  #checkov:skip=CKV_GCP_102: Stripe cannot present Google credentials; the webhook verifies Stripe-Signature on every request
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["stripe-webhook"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
