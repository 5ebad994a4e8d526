output "workflow_ids" {
  description = "Deployed Cloud Workflows: workflow name => id (projects/<project>/locations/<region>/workflows/<name>)."
  value       = { for name, workflow in google_workflows_workflow.this : name => workflow.id }
}

output "dag_objects" {
  description = "Uploaded DAG files: file name => gs://<bucket>/dags/<file>."
  value       = { for name, object in google_storage_bucket_object.dags : name => "gs://${object.bucket}/${object.name}" }
}

output "composer_bucket" {
  description = "Bucket the DAGs go to (composer_bucket_name, or the created environment's); null when there is none."
  value       = local.composer_bucket
}

output "composer_environment_id" {
  description = "Id of the created Composer environment, or null."
  value       = try(google_composer_environment.this[0].id, null)
}

output "cloud_workflows_definitions" {
  description = "Definition files whose engine is cloud_workflows."
  value       = [for name, engine in local.definition_engines : name if engine == "cloud_workflows"]
}

output "composer_definitions" {
  description = "Definition files whose engine is composer."
  value       = [for name, engine in local.definition_engines : name if engine == "composer"]
}

output "generated_dir" {
  description = "Directory of the files generated from the current inputs (one sub-directory per engine)."
  value       = local.generated_dir
}

output "platform_parameters_file" {
  description = "The platform-parameters-<environment>.json written beside the definitions."
  value       = local_file.platform_parameters.filename
}

output "workflows_service_accounts" {
  description = "Email of the service account each deployed cloud_workflows pipeline's workflows run as: pipeline name => email (with workflows_service_account_scope = \"definitions_dir\", the same account for every pipeline)."
  value       = { for pipeline, account in local.account_of : pipeline => google_service_account.workflows[account].email }
}

output "workflows_grants" {
  description = "The roles granted to the workflows' service accounts, \"<account> <on> <role>\" => {account (a pipeline, or shared), role, on (projects/<id>, buckets/<name>, serviceAccounts/<email>, topics/<id> or functions/<name>), why, pipelines}, as `levelflow plan --format json` lists them."
  value       = local.resolved_grants
}

output "schedules" {
  description = "Cloud Scheduler jobs of the scheduled workflows: workflow name => {job (its id), cron (unix-cron), time_zone, paused, dates}."
  value = { for name, job in google_cloud_scheduler_job.pipeline : name => {
    job = job.id, cron = job.schedule, time_zone = job.time_zone, paused = job.paused, dates = local.scheduled_workflows[name].dates
  } }
}

output "notify_topics" {
  description = "Pub/Sub topics the pipelines publish their reports to: topic id => the addresses its alert policy mails."
  value       = local.notify_topics
}
