from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "consentry.ops"
    label = "ops"
    verbose_name = "Operations: readiness, metrics, request logs, security headers"
