# ------------------------------------------------------------------------------------------
# Who the workflows run as (docs/deployment.md): a service account per pipeline (or one for
# every pipeline of definitions_dir: workflows_service_account_scope), holding exactly the roles
# `levelflow plan --format json` lists for the pipeline's workflows, no more:
# - functions mode: the invoker role on the AEF intermediate function;
# - native mode (docs/step-modes.md): the roles on the APIs and resources its steps' jobs use;
# - both: roles/workflows.invoker for a pipeline that starts workflows (its `workflows` steps,
#   or the parts of a split pipeline), and publishing to its notify topic.
# ------------------------------------------------------------------------------------------

locals {
  deploys_workflows = contains(keys(local.engine_definitions), "cloud_workflows")
  native            = var.step_mode == "native" && local.deploys_workflows
  per_pipeline      = var.workflows_service_account_scope == "pipeline"
  environment_id    = replace(lower(var.environment), "_", "-")

  # plan answers one report for one definition file, a list of reports for several.
  workflow_reports = local.deploys_workflows ? flatten([jsondecode(data.external.workflows_plan[0].result.output)]) : []

  # Account key => the account. An id is 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]): per
  # pipeline, "lf-", the pipeline's name cut to 19 characters, and a hash of environment and
  # name, so that two long names, or two environments in one project, never share an account.
  workflow_accounts = local.per_pipeline ? {
    for report in local.workflow_reports : report.pipeline => {
      account_id   = "lf-${trim(substr(replace(lower(report.pipeline), "_", "-"), 0, 19), "-")}-${substr(sha256("${var.environment}/${report.pipeline}"), 0, 6)}"
      display_name = "levelflow pipeline ${report.pipeline} (${var.environment})"
    }
    } : length(local.workflow_reports) == 0 ? {} : {
    shared = { account_id = "lf-wf-${local.environment_id}", display_name = "levelflow pipelines of ${var.definitions_dir} (${var.environment})" }
  }
  account_of = { for report in local.workflow_reports : report.pipeline => local.per_pipeline ? report.pipeline : "shared" }
  # Workflow name (the main one and its parts) => the key of the account it runs as.
  workflow_account = merge([for report in local.workflow_reports : { for name in report.workflows : name => local.account_of[report.pipeline] }]...)

  workflow_iam = flatten([for report in local.workflow_reports : [
    for entry in report.iam : merge(entry, { pipeline = report.pipeline, account = local.account_of[report.pipeline] })
  ]])
  # Each role on each resource once per account: "<account> <on> <role>" => the grant.
  workflow_grants = {
    for key, entries in { for entry in local.workflow_iam : "${entry.account} ${entry.on} ${entry.role}" => entry... } :
    key => {
      account   = entries[0].account
      role      = entries[0].role
      on        = entries[0].on
      why       = join("; ", distinct([for entry in entries : entry.why]))
      pipelines = distinct([for entry in entries : entry.pipeline])
    }
  }
  # A resource levelflow could not name (a job file key without jobs_dir, or a workflow property
  # the definition lacks) is written <...>.
  unresolved_grants = [for key, grant in local.workflow_grants : key if strcontains(grant.on, "<")]
  resolved_grants   = { for key, grant in local.workflow_grants : key => grant if !strcontains(grant.on, "<") }

  project_grants = {
    for key, grant in local.resolved_grants : key => merge(grant, { project = trimprefix(grant.on, "projects/") })
    if startswith(grant.on, "projects/")
  }
  bucket_grants = {
    for key, grant in local.resolved_grants : key => merge(grant, { bucket = trimprefix(grant.on, "buckets/") })
    if startswith(grant.on, "buckets/")
  }
  topic_grants = {
    for key, grant in local.resolved_grants : key => merge(grant, { topic = trimprefix(grant.on, "topics/") })
    if startswith(grant.on, "topics/")
  }
  # The intermediate function of the pipelines' project and region (pProjectID, pRegion).
  function_grants = {
    for key, grant in local.resolved_grants : key => merge(grant, { function = trimprefix(grant.on, "functions/") })
    if startswith(grant.on, "functions/")
  }
  # A user-managed account's project is in its email; any other (a default compute account...)
  # takes "-", the account's own project: the IAM API says so of a service account's name
  # (https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts), and the
  # provider's check of service_account_id (verify.ServiceAccountLinkRegex) accepts it.
  service_account_grants = {
    for key, grant in local.resolved_grants : key => merge(grant, {
      email   = trimprefix(grant.on, "serviceAccounts/")
      project = try(regex("@([a-z][-a-z0-9]*)\\.iam\\.gserviceaccount\\.com$", grant.on)[0], "-")
    })
    if startswith(grant.on, "serviceAccounts/")
  }
}

data "external" "workflows_plan" {
  count   = local.deploys_workflows ? 1 : 0
  program = ["python3", "${path.module}/levelflow_external.py"]
  query = {
    command     = "levelflow plan ${local.quoted_definitions["cloud_workflows"]} --params ${local.quoted_parameters_file}${local.engine_flags["cloud_workflows"]} --format json"
    params_file = "${local.generated_dir}/${local.parameters_file_name}"
    params_json = local.platform_parameters_json
  }
}

resource "google_service_account" "workflows" {
  for_each     = local.workflow_accounts
  project      = var.project
  account_id   = each.value.account_id
  display_name = each.value.display_name
  description  = "Identity of Cloud Workflows levelflow generates (${var.step_mode} mode): it holds the roles `levelflow plan` lists for them, no more."

  lifecycle {
    precondition {
      condition     = length(each.value.account_id) <= 30 && can(regex("^[a-z]([-a-z0-9]*[a-z0-9])$", each.value.account_id))
      error_message = "The workflows' service account id ${each.value.account_id} must be at most 30 characters and end with a letter or digit: use an environment of at most 24 characters, ending with one."
    }
    precondition {
      condition     = length(local.unresolved_grants) == 0
      error_message = "The workflows' service account needs roles on resources levelflow cannot name: ${join(", ", local.unresolved_grants)}. A <KEY of EXECUTOR/JOB_NAME.json> is named in that job file: set jobs_dir to a local copy of the jobs bucket (gs://${local.jobs_bucket}). A <workflow property KEY> is set in the definition's properties."
    }
  }
}

resource "google_project_iam_member" "workflows" {
  for_each = local.project_grants
  project  = each.value.project
  role     = each.value.role
  member   = google_service_account.workflows[each.value.account].member
}

resource "google_storage_bucket_iam_member" "workflows" {
  for_each = local.bucket_grants
  bucket   = each.value.bucket
  role     = each.value.role
  member   = google_service_account.workflows[each.value.account].member
}

# On the topic the pipeline publishes its reports to (notify), created by notifications.tf.
resource "google_pubsub_topic_iam_member" "workflows" {
  for_each   = local.topic_grants
  project    = var.project
  topic      = each.value.topic
  role       = each.value.role
  member     = google_service_account.workflows[each.value.account].member
  depends_on = [google_pubsub_topic.notify]
}

# On the account a job runs as (roles/iam.serviceAccountUser to start a batch as it).
resource "google_service_account_iam_member" "workflows" {
  for_each           = local.service_account_grants
  service_account_id = "projects/${each.value.project}/serviceAccounts/${each.value.email}"
  role               = each.value.role
  member             = google_service_account.workflows[each.value.account].member
}

# Functions mode: the intermediate function, invoked with an ID token of the workflow's account.
# A 2nd gen function (the AEF deploys its functions so) is invoked through its Cloud Run
# service, of the same name: roles/run.invoker on it; a 1st gen one: roles/cloudfunctions.invoker
# on the function (https://cloud.google.com/functions/docs/securing/authenticating).
resource "google_cloud_run_v2_service_iam_member" "workflows" {
  for_each = coalesce(var.intermediate_function_generation, 2) == 2 ? local.function_grants : {}
  project  = var.project
  location = var.region
  name     = each.value.function
  role     = each.value.role
  member   = google_service_account.workflows[each.value.account].member
}

resource "google_cloudfunctions_function_iam_member" "workflows" {
  for_each       = var.intermediate_function_generation == 1 ? local.function_grants : {}
  project        = var.project
  region         = var.region
  cloud_function = each.value.function
  role           = "roles/cloudfunctions.invoker"
  member         = google_service_account.workflows[each.value.account].member
}
