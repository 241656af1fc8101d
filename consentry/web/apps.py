from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "consentry.web"
    label = "web"
