from django.apps import AppConfig


class ReplayConfig(AppConfig):
    name = "consentry.replay"
    label = "replay"
    verbose_name = "Cambridge Analytica replay"
