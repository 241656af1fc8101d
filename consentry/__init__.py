"""Consentry: a consent-enforced platform API (see docs/architecture.md)."""

__version__ = "0.1.0"
