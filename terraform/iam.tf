# Identities and who may call what.
#
# - functions: the runtime identity of every function. It may write logs, metrics and
#   traces, and read exactly the secrets in secrets.tf (one binding per secret there).
#   Nothing else: Cloud SQL is reached with a password on its private IP (no
#   cloudsql.client), Redis and QStash over HTTPS with tokens.
# - build: the Cloud Build identity that turns a source zip into an image.
# - invokers: every function is public at the network level, because every caller is
#   outside Google (browsers, QStash, Stripe) and each function authenticates each request
#   in code. Functions not named in these bindings would stay private.

resource "google_service_account" "functions" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-runtime"
  display_name = "Reel Content functions runtime"
}

resource "google_project_iam_member" "functions" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.functions.email}"
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-build"
  display_name = "Reel Content functions build"
}

resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
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
