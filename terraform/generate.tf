# ------------------------------------------------------------------------------------------
# Platform parameters and generation with the levelflow CLI.
#
# Terraform must know at plan time which workflows and DAGs exist, and only the generator
# knows which files a definition becomes (a big pipeline may be split into child workflows).
# So generation runs at plan time, in `external` data sources, into a directory named after a
# hash of every input: the definition files, the parameters, `levelflow --version`, the step
# mode and the job files of jobs_dir. An unchanged input set reuses the directory (the CLI does
# not run again); any change makes a new one, so a deleted definition never leaves a stale file
# behind.
# ------------------------------------------------------------------------------------------

locals {
  # The names the original AEF deployment uses, so existing executors and buckets line up.
  function_intermediate_name = "orch-framework-intermediate"
  jobs_bucket                = "${var.data_transformation_project}_aef_jobs_bucket"

  platform_parameters = [
    { ParameterKey = "pProjectID", ParameterValue = var.project },
    { ParameterKey = "pRegion", ParameterValue = var.region },
    { ParameterKey = "pFunctionIntermediateName", ParameterValue = local.function_intermediate_name },
    { ParameterKey = "pJobsDefinitionsBucket", ParameterValue = local.jobs_bucket },
    { ParameterKey = "pDataTransformationProjectID", ParameterValue = var.data_transformation_project },
  ]
  platform_parameters_json = jsonencode(local.platform_parameters)
  parameters_file_name     = "platform-parameters-${var.environment}.json"

  # The definitions levelflow reads in definitions_dir (recursively, minus .levelflowignore:
  # docs/definition.md), each with its engine, as levelflow itself reports them, so that the
  # module deploys what the commands read. An invalid definition fails the plan with
  # levelflow's own messages. Keys: the paths as levelflow prints them.
  definition_engines = { for found in jsondecode(data.external.definitions.result.output).files : found.file => found.engine }
  definition_files   = sort(keys(local.definition_engines))

  # Engines to generate, each with its definition files; an engine with nothing to do is left out.
  engine_definitions = {
    for engine, wanted in { cloud_workflows = var.deploy_cloud_workflows, composer = var.deploy_composer_dags } :
    engine => [for name, found in local.definition_engines : name if found == engine]
    if wanted && contains(values(local.definition_engines), engine)
  }

  # Job files are only read in native mode (a precondition refuses jobs_dir otherwise).
  job_files = var.jobs_dir == null ? [] : sort(fileset(var.jobs_dir, "**/*.json"))

  inputs_hash = sha256(jsonencode({
    definitions = { for name in local.definition_files : name => filesha256(name) }
    parameters  = local.platform_parameters_json
    levelflow   = data.external.levelflow_version.result.output
    step_mode   = var.step_mode
    jobs        = { for name in local.job_files : name => filesha256("${var.jobs_dir}/${name}") }
  }))
  generated_dir = "${path.root}/.levelflow/${var.environment}/${substr(local.inputs_hash, 0, 16)}"

  # Command-line arguments, single-quoted for POSIX shell word splitting (a quote becomes '\'').
  quoted_definitions_dir = "'${replace(var.definitions_dir, "'", "'\\''")}'"
  quoted_parameters_file = "'${replace("${local.generated_dir}/${local.parameters_file_name}", "'", "'\\''")}'"
  quoted_definitions = {
    for engine, names in local.engine_definitions :
    engine => join(" ", [for name in names : "'${replace(name, "'", "'\\''")}'"])
  }
  quoted_out_dirs = { for engine in keys(local.engine_definitions) : engine => "'${replace("${local.generated_dir}/${engine}", "'", "'\\''")}'" }
  quoted_jobs_dir = var.jobs_dir == null ? "" : "'${replace(var.jobs_dir, "'", "'\\''")}'"

  # Flags of the Cloud Workflows commands (generate, plan) per step mode: none in functions mode,
  # as before; --jobs-dir only in native mode (a precondition refuses it in functions mode).
  step_mode_flags = {
    functions = ""
    native    = var.jobs_dir == null ? " --step-mode native" : " --step-mode native --jobs-dir ${local.quoted_jobs_dir}"
  }
  engine_flags = { cloud_workflows = local.step_mode_flags[var.step_mode], composer = "" }
}

data "external" "definitions" {
  program = ["python3", "${path.module}/levelflow_external.py"]
  query   = { command = "levelflow validate ${local.quoted_definitions_dir} --format json" }
}

data "external" "levelflow_version" {
  program = ["python3", "${path.module}/levelflow_external.py"]
  query   = { command = "levelflow --version" }
}

data "external" "generate" {
  for_each = local.engine_definitions
  program  = ["python3", "${path.module}/levelflow_external.py"]
  query = {
    command     = "levelflow generate ${local.quoted_definitions[each.key]} --params ${local.quoted_parameters_file} --out ${local.quoted_out_dirs[each.key]}${local.engine_flags[each.key]}"
    out_dir     = "${local.generated_dir}/${each.key}"
    params_file = "${local.generated_dir}/${local.parameters_file_name}"
    params_json = local.platform_parameters_json
  }

  lifecycle {
    precondition {
      condition     = each.key != "composer" || var.create_composer_environment || var.composer_bucket_name != null
      error_message = "deploy_composer_dags needs a bucket: set composer_bucket_name, or create_composer_environment = true."
    }
  }
}

# The parameters beside the definitions, as the original deployment wrote them, for CI/CD steps
# and hand runs (`levelflow generate ... --params`); generation reads its own copy above, since
# this file only appears at apply time.
resource "local_file" "platform_parameters" {
  filename        = "${var.definitions_dir}/${local.parameters_file_name}"
  content         = local.platform_parameters_json
  file_permission = "0644"

  lifecycle {
    precondition {
      condition     = var.step_mode != "native" || contains(keys(local.engine_definitions), "cloud_workflows")
      error_message = "step_mode = \"native\" is a Cloud Workflows step mode, and no cloud_workflows definition is deployed (deploy_cloud_workflows = false, or none in definitions_dir): Composer DAGs call the Google provider's operators. Unset step_mode."
    }
    precondition {
      condition     = var.jobs_dir == null || var.step_mode == "native"
      error_message = "jobs_dir is read in native step mode only (step_mode = \"native\"): in functions mode the executor functions read the job files from the bucket. Unset jobs_dir."
    }
    precondition {
      condition = local.deploys_workflows || alltrue([
        var.crypto_key_name == null, var.execution_history_level == null, length(var.user_env_vars) == 0, var.intermediate_function_generation == null,
      ])
      error_message = "crypto_key_name, execution_history_level, user_env_vars and intermediate_function_generation are settings of the Cloud Workflows this module deploys, and it deploys none (deploy_cloud_workflows = false, or no cloud_workflows definition in definitions_dir): unset them."
    }
    precondition {
      condition     = var.intermediate_function_generation == null || var.step_mode == "functions"
      error_message = "intermediate_function_generation is read in functions step mode only: in native mode the workflows call Google's APIs, not the intermediate function. Unset it."
    }
    precondition {
      condition     = length(local.definition_files) > 0
      error_message = "No definition files (*.json, *.yaml, *.yml) in definitions_dir ${var.definitions_dir} (relative to where Terraform runs): see `levelflow validate ${var.definitions_dir}`."
    }
  }
}
