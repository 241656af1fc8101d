from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """The privacy center: the person's own pages under /privacy/ and the public
    transparency card of each app under /apps/<id>."""

    name = "consentry.privacy"
    label = "privacy"
    default_auto_field = "django.db.models.BigAutoField"
