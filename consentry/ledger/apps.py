from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "consentry.ledger"
    label = "ledger"
