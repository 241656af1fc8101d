from django.apps import AppConfig


class GraphConfig(AppConfig):
    name = "consentry.graph"
    label = "graph"
