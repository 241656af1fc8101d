from django.apps import AppConfig


class DevelopersConfig(AppConfig):
    name = "consentry.developers"
    label = "developers"
    verbose_name = "Developer platform"
