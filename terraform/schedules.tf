# ------------------------------------------------------------------------------------------
# Schedules (docs/scheduling.md): one Cloud Scheduler job per scheduled cloud_workflows
# definition, starting an execution through the Workflow Executions API as an invoker
# service account. The argument is the one the AEF pipeline-executor gives, less the dates:
# the workflow computes them from the moment it starts, in the schedule's time zone, by its
# `dates` rule. The schedules are read from `levelflow validate --format json`.
# ------------------------------------------------------------------------------------------

locals {
  # Workflow name => its schedule, for the cloud_workflows definitions deployed here.
  scheduled_workflows = {
    for found in jsondecode(data.external.definitions.result.output).files : found.name => found.schedule
    if var.deploy_cloud_workflows && found.engine == "cloud_workflows" && found.schedule != null
  }
  scheduler_account_id = "lf-sched-${replace(lower(var.environment), "_", "-")}"
}

resource "google_service_account" "scheduler" {
  count        = length(local.scheduled_workflows) > 0 ? 1 : 0
  project      = var.project
  account_id   = local.scheduler_account_id
  display_name = "Schedules of the levelflow pipelines (${var.environment})"
  description  = "Starts the scheduled workflows levelflow generates: Cloud Scheduler's identity, with roles/workflows.invoker only."

  lifecycle {
    precondition {
      condition     = length(local.scheduler_account_id) <= 30 && can(regex("^[a-z]([-a-z0-9]*[a-z0-9])$", local.scheduler_account_id))
      error_message = "The schedules' service account id ${local.scheduler_account_id} must be at most 30 characters and end with a letter or digit: use an environment of at most 21 characters, ending with one."
    }
  }
}

resource "google_project_iam_member" "scheduler_invoker" {
  count   = length(local.scheduled_workflows) > 0 ? 1 : 0
  project = var.project
  role    = "roles/workflows.invoker"
  member  = google_service_account.scheduler[0].member
}

resource "google_cloud_scheduler_job" "pipeline" {
  for_each    = local.scheduled_workflows
  project     = var.project
  region      = var.region
  name        = "levelflow-${each.key}"
  description = "Runs workflow ${each.key} (levelflow schedule: ${each.value.cron}, dates ${each.value.dates})."
  schedule    = each.value.unix_cron
  time_zone   = each.value.time_zone
  paused      = each.value.paused

  http_target {
    http_method = "POST"
    uri         = "https://workflowexecutions.googleapis.com/v1/projects/${var.project}/locations/${var.region}/workflows/${each.key}/executions"
    headers     = { "Content-Type" = "application/json" }
    # An Execution whose `argument` is JSON text (Workflow Executions API, executions.create).
    body = base64encode(jsonencode({
      argument = jsonencode({ workflow_name = each.key, workflow_properties = each.value.workflow_properties })
    }))
    oauth_token {
      service_account_email = google_service_account.scheduler[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_workflows_workflow.this, google_project_iam_member.scheduler_invoker]
}
