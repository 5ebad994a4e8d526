# ------------------------------------------------------------------------------------------
# Cloud Composer: DAG upload, and optionally the environment with its service account.
# ------------------------------------------------------------------------------------------

locals {
  dags_dir = try(data.external.generate["composer"].result.out_dir, null)
  dag_sources = local.dags_dir == null ? {} : {
    for name in fileset(local.dags_dir, "*.py") : name => "${local.dags_dir}/${name}"
  }

  # An explicit bucket wins; otherwise the created environment's, from gs://<bucket>/dags.
  composer_bucket = (
    var.composer_bucket_name != null
    ? trimsuffix(trimprefix(var.composer_bucket_name, "gs://"), "/")
    : try(regex("^gs://([^/]+)", google_composer_environment.this[0].config[0].dag_gcs_prefix)[0], null)
  )

  composer_image = coalesce(var.composer_config.software_config.image_version, "composer-3-airflow-2.10.5")
  composer_3     = startswith(local.composer_image, "composer-3")

  # Airflow reads environment variables AIRFLOW_VAR_<name> as Airflow variables.
  composer_airflow_variables = {
    for name, value in merge(var.composer_config.software_config.env_variables, { DATA_TRANSFORMATION_GCS_BUCKET = local.jobs_bucket }) :
    "AIRFLOW_VAR_${name}" => value
  }

  # What the DAGs' operators do: BigQuery jobs, Dataform runs, Dataflow and Dataproc Serverless jobs.
  composer_worker_roles = [
    "roles/bigquery.jobUser",
    "roles/composer.worker",
    "roles/dataform.admin",
    "roles/dataflow.admin",
    "roles/dataproc.editor",
    "roles/iam.serviceAccountUser",
  ]
}

resource "google_storage_bucket_object" "dags" {
  for_each       = local.dag_sources
  bucket         = local.composer_bucket
  name           = "dags/${each.key}"
  source         = each.value
  source_md5hash = filemd5(each.value)
  content_type   = "text/x-python"
}

data "google_project" "composer" {
  count      = var.create_composer_environment ? 1 : 0
  project_id = var.project
}

resource "google_service_account" "composer" {
  count        = var.create_composer_environment ? 1 : 0
  project      = var.project
  account_id   = "aef-composer${var.environment}-sa"
  display_name = "Cloud Composer workers (${var.environment})"
}

resource "google_project_iam_member" "composer_worker" {
  for_each = toset(var.create_composer_environment ? local.composer_worker_roles : [])
  project  = var.project
  role     = each.value
  member   = google_service_account.composer[0].member
}

# Cloud Composer's service agent must be allowed to act for a user-managed service account.
resource "google_service_account_iam_member" "composer_service_agent" {
  count              = var.create_composer_environment ? 1 : 0
  service_account_id = google_service_account.composer[0].name
  role               = "roles/composer.ServiceAgentV2Ext"
  member             = "serviceAccount:service-${data.google_project.composer[0].number}@cloudcomposer-accounts.iam.gserviceaccount.com"
}

resource "google_composer_environment" "this" {
  count    = var.create_composer_environment ? 1 : 0
  provider = google-beta
  project  = var.project
  region   = var.region
  name     = "aef-${var.project}-${var.environment}"
  labels   = var.labels

  config {
    environment_size = var.composer_config.environment_size
    # Private IP, as the original deployment: Composer 3 says so here, Composer 2 below.
    enable_private_environment = local.composer_3 ? true : null

    software_config {
      image_version            = local.composer_image
      airflow_config_overrides = var.composer_config.software_config.airflow_config_overrides
      pypi_packages            = var.composer_config.software_config.pypi_packages
      env_variables            = local.composer_airflow_variables
      cloud_data_lineage_integration {
        enabled = var.composer_config.software_config.cloud_data_lineage_integration
      }
    }

    workloads_config {
      scheduler {
        cpu        = var.composer_config.workloads_config.scheduler.cpu
        memory_gb  = var.composer_config.workloads_config.scheduler.memory_gb
        storage_gb = var.composer_config.workloads_config.scheduler.storage_gb
        count      = var.composer_config.workloads_config.scheduler.count
      }
      web_server {
        cpu        = var.composer_config.workloads_config.web_server.cpu
        memory_gb  = var.composer_config.workloads_config.web_server.memory_gb
        storage_gb = var.composer_config.workloads_config.web_server.storage_gb
      }
      worker {
        cpu        = var.composer_config.workloads_config.worker.cpu
        memory_gb  = var.composer_config.workloads_config.worker.memory_gb
        storage_gb = var.composer_config.workloads_config.worker.storage_gb
        min_count  = var.composer_config.workloads_config.worker.min_count
        max_count  = var.composer_config.workloads_config.worker.max_count
      }
    }

    node_config {
      network              = var.composer_config.vpc
      subnetwork           = var.composer_config.subnet
      service_account      = google_service_account.composer[0].email
      tags                 = ["composer-worker"]
      enable_ip_masq_agent = local.composer_3 ? null : true
    }

    dynamic "private_environment_config" {
      for_each = local.composer_3 ? [] : [true]
      content {
        enable_private_endpoint              = true
        cloud_sql_ipv4_cidr_block            = var.composer_config.cloud_sql
        master_ipv4_cidr_block               = var.composer_config.gke_master
        cloud_composer_connection_subnetwork = var.composer_config.connection_subnetwork
      }
    }

    dynamic "encryption_config" {
      for_each = var.composer_config.service_encryption_keys == null ? [] : [var.composer_config.service_encryption_keys]
      content {
        kms_key_name = encryption_config.value
      }
    }

    dynamic "web_server_network_access_control" {
      for_each = length(var.composer_config.web_server_access_control) == 0 ? [] : [true]
      content {
        dynamic "allowed_ip_range" {
          for_each = var.composer_config.web_server_access_control
          content {
            value       = allowed_ip_range.key
            description = allowed_ip_range.value
          }
        }
      }
    }
  }

  depends_on = [google_project_iam_member.composer_worker, google_service_account_iam_member.composer_service_agent]
}
