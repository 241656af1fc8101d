from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "consentry.notices"
    label = "notices"
    verbose_name = "Notices to people"
