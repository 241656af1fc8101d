from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "consentry.accounts"
    label = "accounts"
