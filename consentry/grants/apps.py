from django.apps import AppConfig


class GrantsConfig(AppConfig):
    name = "consentry.grants"
    label = "grants"
