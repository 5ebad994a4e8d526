variable "project" {
  description = "Project where the Cloud Workflows or Composer DAGs are deployed."
  type        = string
  nullable    = false
}

variable "region" {
  description = "Region of the Cloud Workflows (and of the Composer environment when one is created)."
  type        = string
  nullable    = false
}

variable "environment" {
  description = "Environment name (dev, prod...). Names the parameters file platform-parameters-<environment>.json and the Composer environment."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.environment))
    error_message = "environment must be letters, digits, '_' or '-' (it becomes part of a file name)."
  }
}

variable "data_transformation_project" {
  description = "Project holding the data transformation job definitions; its jobs bucket <project>_aef_jobs_bucket holds the job parameter files."
  type        = string
  nullable    = false
}

variable "deploy_cloud_workflows" {
  description = "Generate and deploy the cloud_workflows definitions as Cloud Workflows. When false, deploy them in a later CI/CD step."
  type        = bool
  nullable    = false
  default     = true
}

variable "deploy_composer_dags" {
  description = "Generate the composer definitions as Airflow DAGs and upload them to the Composer bucket. When false, deploy them in a later CI/CD step."
  type        = bool
  nullable    = false
  default     = false
}

variable "create_composer_environment" {
  description = "Create a Cloud Composer environment (and its service account). When false and deploy_composer_dags is true, composer_bucket_name must be set."
  type        = bool
  nullable    = false
  default     = false
}

variable "composer_bucket_name" {
  description = "Bucket of an existing Composer environment to upload DAGs to (name or gs://name). When set, DAGs go there even if an environment is created."
  type        = string
  nullable    = true
  default     = null

  validation {
    condition     = var.composer_bucket_name == null || can(regex("^(gs://)?[a-z0-9][a-z0-9._-]*[a-z0-9]/?$", var.composer_bucket_name))
    error_message = "composer_bucket_name must be a bucket name, optionally written gs://name."
  }
}

variable "composer_config" {
  description = "Settings of the created Composer environment. image_version defaults to composer-3-airflow-2.10.5; vpc/subnet are the network; cloud_sql, gke_master and connection_subnetwork are Composer 2 private-IP ranges; service_encryption_keys is a KMS key; env_variables become Airflow variables (AIRFLOW_VAR_<name>); web_server_access_control maps allowed IP ranges to descriptions."
  type = object({
    vpc                     = optional(string)
    subnet                  = optional(string)
    connection_subnetwork   = optional(string)
    cloud_sql               = optional(string)
    gke_master              = optional(string)
    service_encryption_keys = optional(string)
    environment_size        = optional(string)
    software_config = optional(object({
      airflow_config_overrides       = optional(map(string), {})
      pypi_packages                  = optional(map(string), {})
      env_variables                  = optional(map(string), {})
      image_version                  = optional(string)
      cloud_data_lineage_integration = optional(bool, true)
    }), {})
    web_server_access_control = optional(map(string), {})
    workloads_config = optional(object({
      scheduler = optional(object({
        cpu        = optional(number)
        memory_gb  = optional(number)
        storage_gb = optional(number)
        count      = optional(number)
      }), {})
      web_server = optional(object({
        cpu        = optional(number)
        memory_gb  = optional(number)
        storage_gb = optional(number)
      }), {})
      worker = optional(object({
        cpu        = optional(number)
        memory_gb  = optional(number)
        storage_gb = optional(number)
        min_count  = optional(number)
        max_count  = optional(number)
      }), {})
    }), {})
  })
  nullable = false
  default  = {}

  validation {
    condition = (
      !startswith(coalesce(var.composer_config.software_config.image_version, "composer-3"), "composer-3")
      || alltrue([for range in [var.composer_config.cloud_sql, var.composer_config.gke_master, var.composer_config.connection_subnetwork] : range == null])
    )
    error_message = "cloud_sql, gke_master and connection_subnetwork are Cloud Composer 2 private-IP settings; Cloud Composer 3 (the default image) has none: unset them or choose a composer-2 image_version."
  }
}

variable "workflows_log_level" {
  description = "Level of platform logging of calls and call responses during Cloud Workflows executions."
  type        = string
  nullable    = false
  default     = "LOG_ERRORS_ONLY"

  validation {
    condition     = contains(["CALL_LOG_LEVEL_UNSPECIFIED", "LOG_ALL_CALLS", "LOG_ERRORS_ONLY", "LOG_NONE"], var.workflows_log_level)
    error_message = "workflows_log_level must be CALL_LOG_LEVEL_UNSPECIFIED, LOG_ALL_CALLS, LOG_ERRORS_ONLY or LOG_NONE."
  }
}

variable "definitions_dir" {
  description = "Directory of the definition files (*.json, *.yaml, *.yml under it, as `levelflow validate DIR` finds them: recursively, minus .levelflowignore), relative to where Terraform runs. platform-parameters-<environment>.json is written there too."
  type        = string
  nullable    = false
  default     = "../workflow-definitions"
}

variable "step_mode" {
  description = "How the Cloud Workflows' steps call their jobs (docs/step-modes.md): \"functions\", through the AEF intermediate Cloud Function; or \"native\", calling Google's APIs themselves as a service account this module creates, with the roles `levelflow plan --step-mode native` lists. Composer DAGs have no native mode."
  type        = string
  nullable    = false
  default     = "functions"

  validation {
    condition     = contains(["functions", "native"], var.step_mode)
    error_message = "step_mode must be \"functions\" or \"native\"."
  }
}

variable "jobs_dir" {
  description = "Native step mode only: a local copy of the jobs bucket (<executor>/<JOB_NAME>.json), relative to where Terraform runs. The job files are checked and embedded in the workflows at plan time, and name the projects and service accounts the workflows' service account is granted roles on."
  type        = string
  nullable    = true
  default     = null
}

variable "workflows_service_account_scope" {
  description = "Who the Cloud Workflows run as (docs/deployment.md): \"pipeline\", a service account per pipeline holding only the roles its own steps need; or \"definitions_dir\", one account for every pipeline deployed here, holding the roles of them all."
  type        = string
  nullable    = false
  default     = "pipeline"

  validation {
    condition     = contains(["pipeline", "definitions_dir"], var.workflows_service_account_scope)
    error_message = "workflows_service_account_scope must be \"pipeline\" or \"definitions_dir\"."
  }
}

variable "intermediate_function_generation" {
  description = "Functions step mode: the generation of the AEF intermediate function the workflows call, 2 (Cloud Run functions, as the AEF deploys it: roles/run.invoker on its service) or 1 (roles/cloudfunctions.invoker on the function). Unset: 2."
  type        = number
  nullable    = true
  default     = null

  validation {
    condition     = var.intermediate_function_generation == null || contains([1, 2], coalesce(var.intermediate_function_generation, 2))
    error_message = "intermediate_function_generation must be 1 or 2."
  }
}

variable "crypto_key_name" {
  description = "Cloud KMS key the workflows and their executions are encrypted with (CMEK), projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>, in the workflows' region. The module lets the project's Workflows service agent use it. Unset: Google-managed encryption."
  type        = string
  nullable    = true
  default     = null

  validation {
    condition     = var.crypto_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.crypto_key_name, "-")))
    error_message = "crypto_key_name must be a key's resource name: projects/<project>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>."
  }
}

variable "labels" {
  description = "Labels of the deployed resources that take labels: the workflows (which also get levelflow-pipeline = <pipeline>), the notify topics and the created Composer environment."
  type        = map(string)
  nullable    = false
  default     = {}

  validation {
    # https://cloud.google.com/resource-manager/docs/labels-overview#requirements
    condition = length(var.labels) <= 63 && alltrue([
      for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))
    ])
    error_message = "labels: at most 63 (the module adds one), each key a lower-case letter then up to 62 lower-case letters, digits, '_' or '-', each value up to 63 of those."
  }
  validation {
    condition     = !contains(keys(var.labels), "levelflow-pipeline")
    error_message = "The label levelflow-pipeline is the module's: it names each workflow's pipeline."
  }
}

variable "execution_history_level" {
  description = "How much history of each workflow execution is kept: EXECUTION_HISTORY_BASIC or EXECUTION_HISTORY_DETAILED (steps and variables, for the console's step view). Unset: the service's default."
  type        = string
  nullable    = true
  default     = null

  validation {
    condition     = var.execution_history_level == null || contains(["EXECUTION_HISTORY_BASIC", "EXECUTION_HISTORY_DETAILED"], coalesce(var.execution_history_level, "-"))
    error_message = "execution_history_level must be EXECUTION_HISTORY_BASIC or EXECUTION_HISTORY_DETAILED."
  }
}

variable "user_env_vars" {
  description = "User-defined environment variables set on every workflow (the workflow's userEnvVars, which sys.get_env reads), for tooling and policies that read them from the deployed workflow; the generated code reads none. At most 20, names neither empty nor starting with GOOGLE or WORKFLOWS, values up to 4 KiB."
  type        = map(string)
  nullable    = false
  default     = {}

  validation {
    condition = length(var.user_env_vars) <= 20 && alltrue([
      for name, value in var.user_env_vars : name != "" && !startswith(name, "GOOGLE") && !startswith(name, "WORKFLOWS") && length(value) <= 4096
    ])
    error_message = "user_env_vars: at most 20, names neither empty nor starting with GOOGLE or WORKFLOWS, values of at most 4096 characters."
  }
}
