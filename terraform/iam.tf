# Identities and who may call what.
#
# - fn[<function>]: one runtime identity per function (functions.json), so each holds only
#   its own permissions: write logs, and read exactly the secrets its registry entry needs
#   (secrets.tf, one binding per function and secret). Nothing else: no metric or trace
#   writer (the code exports neither; metrics are log-based, monitoring.tf):
#   Cloud SQL is reached with a password on its private IP (no cloudsql.client), Redis and
#   QStash over HTTPS with tokens. The health function cannot read the Stripe key.
# - build: the Cloud Build identity that turns a source zip into an image: it reads the
#   sources (our bucket and the gcf-v2-sources bucket Cloud Functions copies them to),
#   pushes to our Artifact Registry repository and writes build logs. Nothing else.
# - gateway: the API Gateway config's backend identity (gateway.tf); with
#   public_invokers = false it is the only caller of the API functions.
# - migrate: the migration job's identity (migrate.tf).
# - invokers: with public_invokers = true (the default) every function is public at the
#   network level, because every caller is outside Google (browsers, QStash, Stripe) and
#   each function authenticates each request in code. With false, no allUsers binding
#   exists (organisations with domain-restricted sharing refuse them): the API functions
#   are invoked by the gateway's account only (terraform/README.md "A fresh organisation").

locals {
  # Logs only: metrics are log-based (monitoring.tf) and nothing exports traces
  # (no opentelemetry / google-cloud-monitoring / google-cloud-trace in requirements.txt).
  runtime_roles = toset([
    "roles/logging.logWriter",
  ])

  runtime_grants = {
    for pair in setproduct(keys(local.functions), local.runtime_roles) :
    "${pair[0]} ${pair[1]}" => { function = pair[0], role = pair[1] }
  }

  # Project-wide, but only logs: Cloud Build writes the build log under the project.
  build_roles = toset([
    "roles/logging.logWriter",
  ])

  # Gen2 builds copy the source zip into the gcf-v2-sources-<number>-<region> bucket that
  # Cloud Functions manages and build from there (provider issue 20571), so reading only
  # our bucket is not enough; the read is limited to those two buckets by an IAM condition
  # (that bucket is created by the first deploy, so it cannot be bound directly).
  build_source_buckets = [
    google_storage_bucket.sources.name,
    "gcf-v2-sources-${data.google_project.this.number}-${var.region}",
  ]
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

resource "google_project_iam_member" "build_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "function-sources-only"
    description = "Our sources bucket and the gcf-v2-sources bucket Cloud Functions copies them to."
    # The bucket itself (list) or an object in it (get); "<bucket>/" so that a bucket
    # whose name merely starts with ours does not match.
    expression = join(" || ", flatten([
      for b in local.build_source_buckets : [
        "resource.name == \"projects/_/buckets/${b}\"",
        "resource.name.startsWith(\"projects/_/buckets/${b}/\")",
      ]
    ]))
  }
}

# Images go to our repository only.
resource "google_artifact_registry_repository_iam_member" "build" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# IAM is eventually consistent: a build or a revision started right after a grant can
# still be refused (the provider's example waits 60 s). The functions depend on this wait;
# new grants (a new function or secret) replace it, so they are waited for too.
resource "time_sleep" "iam_propagation" {
  create_duration = "60s"

  triggers = {
    build   = join(",", concat(sort(local.build_roles), local.build_source_buckets))
    runtime = join(",", sort(keys(local.runtime_grants)))
    secrets = join(",", sort(keys(local.secret_grants)))
  }

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.build_sources,
    google_artifact_registry_repository_iam_member.build,
    google_project_iam_member.runtime,
    google_secret_manager_secret_iam_member.functions,
  ]
}

# ---------------------------------------------------------------------------------------
# Invokers (gen2: roles/run.invoker on the underlying Cloud Run service; the
# cloudfunctions invoker role has no effect on 2nd gen functions)
# ---------------------------------------------------------------------------------------

locals {
  # Everything the gateway routes to: the API functions (auth "bearer"), health ("none")
  # and the Stripe webhook ("stripe"; /webhooks/stripe is a gateway route too).
  gateway_functions = {
    for name, fn in local.functions : name => fn if contains(["bearer", "none", "stripe"], fn.auth)
  }

  public_api_functions = {
    for name, fn in local.functions : name => fn if var.public_invokers && contains(["bearer", "none"], fn.auth)
  }
}

# API functions (auth "bearer"): every route verifies the caller's JWT in code (JWKS
# signature, issuer, audience, expiry; admin routes also the admin role) before touching
# data. health (auth "none"): /healthz, /readyz and /openapi.json expose no user data.
# Only with public_invokers = true.
resource "google_cloud_run_service_iam_member" "public_api" {
  #checkov:skip=CKV_GCP_102: public API; each request is authenticated in code by its bearer JWT (shared/api/auth.py)
  for_each = local.public_api_functions

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# public_invokers = false: the gateway's account is the only caller of everything behind
# the gateway; the gateway presents its Google ID token and forwards the caller's bearer
# token in X-Forwarded-Authorization (AUTH_HEADER, functions.tf).
resource "google_cloud_run_service_iam_member" "gateway" {
  for_each = var.public_invokers ? {} : local.gateway_functions

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.gateway.email}"
}

# worker (auth "qstash"): QStash cannot mint Google ID tokens, so the worker is public and
# answers 401 to any request whose Upstash-Signature (HS256 JWT over the exact URL and the
# body hash, current or next signing key) does not verify. That covers /worker/generate,
# /worker/failed and the scheduled /worker/sweep (scheduler.tf). With public_invokers =
# false this is the one allUsers binding left: the project needs the organisation policy
# exception terraform/README.md "A fresh organisation" describes.
resource "google_cloud_run_service_iam_member" "public_worker" {
  #checkov:skip=CKV_GCP_102: QStash cannot present Google credentials; the worker verifies Upstash-Signature on every request
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# stripe-webhook (auth "stripe"): Stripe cannot present Google credentials; the function
# answers 400 unless Stripe-Signature verifies against STRIPE_WEBHOOK_SECRET. With
# public_invokers = false Stripe calls it through the gateway (/webhooks/stripe).
resource "google_cloud_run_service_iam_member" "public_stripe_webhook" {
  #checkov:skip=CKV_GCP_102: Stripe cannot present Google credentials; the webhook verifies Stripe-Signature on every request
  count = var.public_invokers ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["stripe-webhook"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The API Gateway config's backend identity (gateway.tf gateway_config): without it the
# config runs as the project's default compute account.
resource "google_service_account" "gateway" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-gateway"
  display_name = "Reel Content API Gateway backend"

  depends_on = [google_project_service.enabled]
}
