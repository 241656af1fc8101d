from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "consentry.staff"
    label = "staff"
    verbose_name = "Trust & safety staff"
