# Postgres 16 on Cloud SQL (var.use_cloud_sql = true), reachable only on a private IP from
# the functions through a Serverless VPC Access connector. With use_cloud_sql = false none
# of this exists and DATABASE_URL is an out-of-band secret (external Postgres; put
# sslmode=require in that URL).
#
# Connection budget: every instance of every function holds at most db_pool_size
# connections, so sum(max_instance_count) x db_pool_size + reserved must stay within
# max_connections. The instance refuses to plan otherwise (precondition below).

# The functions' own network, created here rather than read: a data source would be read
# at plan time, before compute.googleapis.com is on in a fresh project, and would assume
# a "default" network that organisation policies often forbid.
resource "google_compute_network" "vpc" {
  count = var.use_cloud_sql ? 1 : 0

  project                 = var.project_id
  name                    = "${var.name_prefix}-net"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.enabled]
}

# Nothing in the network accepts connections from outside it: the functions only call out
# (Cloud SQL over the peering). Said explicitly, beneath the rules Google adds for the
# VPC connector (priority 1000), rather than left to the implied deny.
resource "google_compute_firewall" "deny_ingress" {
  count = var.use_cloud_sql ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-deny-ingress"
  network       = google_compute_network.vpc[0].name
  direction     = "INGRESS"
  priority      = 65534
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }
}

resource "google_compute_global_address" "sql_private_range" {
  count = var.use_cloud_sql ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-sql-private-range"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.vpc[0].id
}

resource "google_service_networking_connection" "sql" {
  count = var.use_cloud_sql ? 1 : 0

  network                 = google_compute_network.vpc[0].id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_private_range[0].name]
  # A network can hold one connection to servicenetworking: if it already exists (a
  # re-run, a network shared with another stack), update it instead of failing.
  update_on_creation_fail = true
  # Deleting the peering fails while Cloud SQL still uses it (also for a while after the
  # instance is gone): on destroy Terraform drops it from the state instead of failing.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

resource "google_vpc_access_connector" "functions" {
  count = var.use_cloud_sql ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-vpc"
  region        = var.region
  network       = google_compute_network.vpc[0].name
  ip_cidr_range = var.vpc_connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 4

  depends_on = [google_project_service.enabled]
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_6: private IP only (no public IPv4) with SCRAM-SHA-256 auth; TLS waits for CA pinning in shared/db/connection.py (terraform/README.md "Follow-ups")
  #checkov:skip=CKV_GCP_79: Postgres 16 is the version the schema, migrations and test suite run on; a major upgrade is its own change
  #checkov:skip=CKV2_GCP_13: log_duration writes a line per statement (log cost at request volume); Query Insights already records latency
  count = var.use_cloud_sql ? 1 : 0

  project             = var.project_id
  name                = "${var.name_prefix}-pg16"
  region              = var.region
  database_version    = "POSTGRES_16"
  deletion_protection = var.sql_deletion_protection

  settings {
    # db-custom-* tiers need the Enterprise edition (Postgres 16 defaults to Enterprise Plus).
    edition                     = "ENTERPRISE"
    tier                        = var.sql_tier
    availability_type           = var.sql_availability_type
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    deletion_protection_enabled = var.sql_deletion_protection
    user_labels                 = local.labels

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.vpc[0].id
      # The driver's sslmode=require verifies the server against the public CA store,
      # which Cloud SQL's per-instance CA is not in; see terraform/README.md "Follow-ups".
      ssl_mode = "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.sql_max_connections)
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # Statement texts can contain user briefs and generated scripts: never log them.
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    # The failing statement's text is logged, not its parameters
    # (log_parameter_max_length_on_error stays 0), and every query is parameterised.
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    # pgaudit: the flag loads it, migrations/0010_database_roles.sql creates the extension,
    # and pgaudit.log picks the classes: DDL and role changes (who changed the schema or
    # the grants), never reads or writes, whose statement texts hold user content.
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  lifecycle {
    precondition {
      condition     = local.sql_connection_budget + local.sql_reserved_connections <= var.sql_max_connections
      error_message = "sum(max instances) x db_pool_size (${local.sql_connection_budget}) + ${local.sql_reserved_connections} reserved exceeds sql_max_connections (${var.sql_max_connections})."
    }
  }

  depends_on = [google_service_networking_connection.sql]
}

resource "google_sql_database" "app" {
  count = var.use_cloud_sql ? 1 : 0

  project  = var.project_id
  instance = google_sql_database_instance.main[0].name
  name     = "reel"
}

# Three login users, one per kind of access (migrations/0010_database_roles.sql grants
# them): reel_app (rows: read and write; every function but health), reel_readonly
# (health: SELECT only, read-only transactions) and reel_migrate (the migration job;
# owns the tables). Their passwords are ephemeral and write-only: generated at apply,
# sent to Cloud SQL and to the DATABASE_URL secrets, never stored in the state. Bump
# sql_password_version to rotate all three (users and secrets change in one apply).
locals {
  sql_users = var.use_cloud_sql ? {
    app      = "reel_app"
    readonly = "reel_readonly"
    migrate  = "reel_migrate"
  } : {}
}

ephemeral "random_password" "sql" {
  for_each = local.sql_users

  # Alphanumeric: the password goes into a URL.
  length  = 40
  special = false
}

resource "google_sql_user" "db" {
  for_each = local.sql_users

  project             = var.project_id
  instance            = google_sql_database_instance.main[0].name
  name                = each.value
  password_wo         = ephemeral.random_password.sql[each.key].result
  password_wo_version = var.sql_password_version
}

moved {
  from = google_sql_user.app[0]
  to   = google_sql_user.db["app"]
}

locals {
  # Role => its URL; ephemeral (it holds the password): only write-only arguments read it.
  cloud_sql_database_urls = {
    for role, user in local.sql_users : role => format(
      "postgresql://%s:%s@%s:5432/%s",
      user,
      ephemeral.random_password.sql[role].result,
      google_sql_database_instance.main[0].private_ip_address,
      google_sql_database.app[0].name,
    )
  }
}
