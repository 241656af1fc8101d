from django.apps import AppConfig


class OauthConfig(AppConfig):
    name = "consentry.oauth"
    label = "oauth"

    def ready(self) -> None:
        # Connects the signals that drop cached token facts (consentry.oauth.tokens).
        from consentry.oauth import tokens  # noqa: F401
