# API Gateway in front of the API functions: one public hostname, the OpenAPI 2.0 document
# gateway/openapi2.yaml.tftpl (generated from the route table by `make gateway-openapi`)
# rendered with the function URLs and whether the functions are public (disable_auth);
# each route is sent to its function with the original path (APPEND_PATH_TO_ADDRESS).

resource "google_api_gateway_api" "api" {
  provider = google-beta

  project      = var.project_id
  api_id       = "${var.name_prefix}-api"
  display_name = "Reel Content API"
  labels       = local.labels

  depends_on = [google_project_service.enabled]
}

# Each API gets its own managed service, which must be enabled before a gateway serves it.
resource "google_project_service" "gateway_managed_service" {
  project            = var.project_id
  service            = google_api_gateway_api.api.managed_service
  disable_on_destroy = false
}

resource "google_api_gateway_api_config" "api" {
  provider = google-beta

  project = var.project_id
  api     = google_api_gateway_api.api.api_id
  # Configs are immutable: a changed document creates a new config (new suffix), the
  # gateway switches to it, then the old one is deleted.
  api_config_id_prefix = "${var.name_prefix}-"
  display_name         = "Reel Content API (${var.environment})"
  labels               = local.labels

  openapi_documents {
    document {
      path = "openapi2.yaml"
      contents = base64encode(templatefile("${path.module}/gateway/openapi2.yaml.tftpl", {
        backends = { for name, fn in google_cloudfunctions2_function.fn : name => fn.service_config[0].uri }
        # disable_auth = public_invokers. true: the functions are public (iam.tf) and read
        # the caller's token from Authorization; false: they are private, the gateway
        # calls them with its account's ID token (gateway_config below).
        public_invokers = var.public_invokers
      }))
    }
  }

  # The identity the gateway calls the functions as (iam.tf), not the default compute one.
  gateway_config {
    backend_config {
      google_service_account = google_service_account.gateway.email
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_api_gateway_gateway" "api" {
  provider = google-beta

  project      = var.project_id
  region       = coalesce(var.gateway_region, var.region)
  gateway_id   = "${var.name_prefix}-gateway"
  api_config   = google_api_gateway_api_config.api.id
  display_name = "Reel Content gateway (${var.environment})"
  labels       = local.labels

  depends_on = [google_project_service.gateway_managed_service]
}
