terraform {
  # 1.5: startswith/endswith and lifecycle preconditions on data sources.
  required_version = ">= 1.5"

  required_providers {
    # 6.36: google_workflows_workflow.deletion_protection, google_storage_bucket_object.source_md5hash.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.36, < 8"
    }
    # Cloud Composer 3 settings (enable_private_environment) are in the beta provider.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.36, < 8"
    }
    external = {
      source  = "hashicorp/external"
      version = ">= 2.3"
    }
    local = {
      source  = "hashicorp/local"
      version = ">= 2.5"
    }
  }
}
