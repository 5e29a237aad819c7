output "function_urls" {
  description = "Function name => its Cloud Run URL (service_config.uri)."
  value       = { for name, fn in google_cloudfunctions2_function.fn : name => fn.service_config[0].uri }
}

output "worker_url" {
  description = "WORKER_URL: the worker's deterministic URL that QStash deliveries are signed for."
  value       = local.worker_url
}

output "gateway_hostname" {
  description = "Default hostname of the API Gateway (point the API's DNS name here)."
  value       = google_api_gateway_gateway.api.default_hostname
}

output "gateway_url" {
  description = "Public base URL of the API."
  value       = "https://${google_api_gateway_gateway.api.default_hostname}"
}

output "function_service_accounts" {
  description = "Function name => its runtime identity (one per function)."
  value       = { for name, sa in google_service_account.fn : name => sa.email }
}

output "secret_ids" {
  description = "Env var => Secret Manager secret id (add out-of-band versions to these)."
  value       = { for name, s in google_secret_manager_secret.app : name => s.secret_id }
}

output "out_of_band_secrets" {
  description = "Secrets whose versions are added outside Terraform and pinned in secret_versions."
  value       = local.out_of_band_secrets
}

output "cloud_sql_instance_connection_name" {
  description = "project:region:instance of the Cloud SQL instance (null without Cloud SQL)."
  value       = var.use_cloud_sql ? google_sql_database_instance.main[0].connection_name : null
}

output "upstash_redis_rest_url" {
  description = "UPSTASH_REDIS_REST_URL."
  value       = local.upstash_rest_url
}

output "migrate_job" {
  description = "Name of the migration Cloud Run job (gcloud run jobs execute NAME --region REGION --wait)."
  value       = google_cloud_run_v2_job.migrate.name
}

output "region" {
  description = "Region of the functions and the migration job."
  value       = var.region
}

output "gateway_service_account" {
  description = "The API Gateway config's backend identity."
  value       = google_service_account.gateway.email
}

output "auth_audience" {
  description = "AUTH_AUDIENCE: the audience the smoke token is minted for."
  value       = var.auth_audience
}

output "smoke_client_secret_id" {
  description = "Secret Manager secret id of the smoke client's secret (version added out of band)."
  value       = google_secret_manager_secret.smoke_client_secret.secret_id
}
