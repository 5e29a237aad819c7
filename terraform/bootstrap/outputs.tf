# Set these as variables of the GitHub environments (terraform/README.md "Bootstrap").
output "workload_identity_provider" {
  description = "GCP_WORKLOAD_IDENTITY_PROVIDER of both GitHub environments."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "planner_service_account" {
  description = "GCP_SERVICE_ACCOUNT of the <environment>-plan GitHub environment."
  value       = google_service_account.planner.email
}

output "deployer_service_account" {
  description = "GCP_SERVICE_ACCOUNT of the <environment> GitHub environment."
  value       = google_service_account.deployer.email
}

output "state_bucket" {
  description = "TF_STATE_BUCKET of both GitHub environments."
  value       = google_storage_bucket.state.name
}
