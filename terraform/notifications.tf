# ------------------------------------------------------------------------------------------
# Notifications (docs/notifications.md): the Pub/Sub topics the deployed pipelines publish
# their reports to, and, for the addresses a definition's notify.email lists, a Cloud
# Monitoring alert policy per topic that mails them when a message is published. Read from
# `levelflow validate --format json`, like the schedules.
# ------------------------------------------------------------------------------------------

locals {
  deployed_engines = concat(var.deploy_cloud_workflows ? ["cloud_workflows"] : [], var.deploy_composer_dags ? ["composer"] : [])
  notifying = [for found in jsondecode(data.external.definitions.result.output).files : found.notify
  if found.notify != null && contains(local.deployed_engines, found.engine)]
  # Topic id => the addresses to mail (every definition that publishes to it).
  notify_topics = { for topic, emails in { for notify in local.notifying : notify.pubsub_topic => notify.email... } :
  topic => sort(distinct(flatten(emails))) }
  notify_emails = toset(flatten(values(local.notify_topics)))
}

resource "google_pubsub_topic" "notify" {
  for_each = local.notify_topics
  project  = var.project
  name     = each.key
  labels   = var.labels
}

resource "google_monitoring_notification_channel" "notify" {
  for_each     = local.notify_emails
  project      = var.project
  display_name = "Pipeline reports (levelflow) to ${each.key}"
  type         = "email"
  labels       = { email_address = each.key }
}

resource "google_monitoring_alert_policy" "notify" {
  for_each     = { for topic, emails in local.notify_topics : topic => emails if length(emails) > 0 }
  project      = var.project
  display_name = "levelflow: a pipeline report on ${each.key}"
  combiner     = "OR"
  conditions {
    display_name = "a message was published to ${each.key}"
    condition_threshold {
      filter          = "resource.type = \"pubsub_topic\" AND resource.labels.topic_id = \"${each.key}\" AND metric.type = \"pubsub.googleapis.com/topic/send_message_operation_count\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
  notification_channels = [for email in each.value : google_monitoring_notification_channel.notify[email].id]
  documentation {
    content   = "A levelflow pipeline published its run report to Pub/Sub topic ${each.key}: read the message for the pipeline, its status and each step's (docs/notifications.md)."
    mime_type = "text/markdown"
  }
  depends_on = [google_pubsub_topic.notify]
}
