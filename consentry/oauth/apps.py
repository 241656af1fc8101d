from django.apps import AppConfig


class OauthConfig(AppConfig):
    name = "consentry.oauth"
    label = "oauth"
