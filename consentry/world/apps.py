from django.apps import AppConfig


class WorldConfig(AppConfig):
    name = "consentry.world"
    label = "world"
