from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "consentry.incidents"
    label = "incidents"
