"""A throw-away database for the ledger benchmarks (bench/ledger_*.py).

Without CONSENTRY_DATABASE_URL: a fresh SQLite file under <var>/bench/. With a PostgreSQL
CONSENTRY_DATABASE_URL: a fresh database `<name>` on that server (dropped first), so a
benchmark never touches the operator's data. Call before anything imports Django models.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def setup_scratch_django(name: str) -> str:
    """Point Django at a fresh scratch database called `name`, set it up, migrate it and
    return a description of it ("sqlite <path>" or "postgresql <db>")."""
    url = os.environ.get("CONSENTRY_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urlsplit(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["CONSENTRY_DATABASE_URL"] = urlunsplit(parts._replace(path="/" + name))
        where = f"postgresql {parts.hostname}:{parts.port or 5432}/{name}"
    else:
        var = Path(os.environ.get("CONSENTRY_VAR_DIR", "var")).resolve()
        folder = var / "bench"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        os.environ["CONSENTRY_DATABASE_URL"] = f"sqlite:///{path}"
        where = f"sqlite {path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return where
