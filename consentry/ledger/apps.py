from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LedgerConfig(AppConfig):
    name = "consentry.ledger"
    label = "ledger"

    def ready(self) -> None:
        post_migrate.connect(_keep_partitions_ahead, sender=self)


def _keep_partitions_ahead(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """Every `consentry migrate` tops up the call records' partitions (PostgreSQL)."""
    from consentry.ledger.partitions import ensure_partitions

    ensure_partitions(using=using)
