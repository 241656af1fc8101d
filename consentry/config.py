"""Configuration from `CONSENTRY_*` environment variables, and the checks that refuse
an unsafe production setup.

Everything an operator can set is read here, once, so that `settings.py` stays a plain
list of Django settings and the README's configuration table has one source.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "CONSENTRY_"
DEV_SECRET_PREFIX = "django-insecure-"  # noqa: S105 (a prefix we refuse, not a secret)


def env(name: str, default: str = "") -> str:
    return os.environ.get(PREFIX + name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = env(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{PREFIX}{name}={raw!r}: expected true or false")


def var_dir() -> Path:
    """The operator's state folder: SQLite database, secret key, ledger signing key."""
    path = Path(env("VAR_DIR", "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_or_create_secret(path: Path, make: Callable[[], str] | None = None) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first run."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make() if make else secrets.token_urlsafe(50)
    # O_EXCL: two processes starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Config:
    debug: bool
    secret_key: str
    database_url: str
    redis_url: str
    public_url: str
    allowed_hosts: list[str]
    var: Path

    @property
    def https(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"


def load() -> Config:
    var = var_dir()
    debug = env_bool("DEBUG", False)
    secret_key = env("SECRET_KEY") or read_or_create_secret(var / "secret_key")
    database_url = env("DATABASE_URL") or f"sqlite:///{var / 'consentry.sqlite3'}"
    public_url = env("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    host = urlsplit(public_url).hostname or ""
    default_hosts = f"{host},127.0.0.1,localhost,[::1]"
    allowed_hosts = [h.strip() for h in env("ALLOWED_HOSTS", default_hosts).split(",") if h.strip()]
    config = Config(
        debug=debug,
        secret_key=secret_key,
        database_url=database_url,
        redis_url=env("REDIS_URL"),
        public_url=public_url,
        allowed_hosts=allowed_hosts,
        var=var,
    )
    check_safe(config)
    return config


def check_safe(config: Config) -> None:
    """Refuse to start when a production setting is unsafe.

    Debug mode is the operator saying "this is not production"; without it we insist on
    a real secret key, explicit hosts and HTTPS for anything that is not loopback.
    """
    if config.debug:
        return
    problems = []
    if len(config.secret_key) < 40 or config.secret_key.startswith(DEV_SECRET_PREFIX):
        problems.append(
            f"{PREFIX}SECRET_KEY is too short or a development key: use at least 40 random "
            "characters, or unset it to have one generated under the var folder"
        )
    if "*" in config.allowed_hosts:
        problems.append(f"{PREFIX}ALLOWED_HOSTS must name hosts, not '*'")
    public_host = urlsplit(config.public_url).hostname or ""
    if not config.https and not is_loopback(public_host):
        problems.append(
            f"{PREFIX}PUBLIC_URL={config.public_url} is plain HTTP on a non-loopback host: "
            "OAuth tokens and session cookies must travel over HTTPS (RFC 9700 section 4.1)"
        )
    if problems:
        raise ImproperlyConfigured(
            "Consentry refuses to start with an unsafe setting:\n  - " + "\n  - ".join(problems)
        )


def email_settings(url: str) -> tuple[str, dict[str, object]]:
    """Django email settings from `CONSENTRY_EMAIL_URL`: empty means the console backend
    (mail is printed, nothing is sent); `smtp://` or `smtps://` URLs configure SMTP."""
    if not url:
        return "django.core.mail.backends.console.EmailBackend", {}
    from urllib.parse import unquote

    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"{PREFIX}EMAIL_URL: expected smtp://user:password@host:port or smtps://..."
        )
    tls_on_connect = parts.scheme == "smtps"
    return "django.core.mail.backends.smtp.EmailBackend", {
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": parts.port or (465 if tls_on_connect else 587),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": tls_on_connect,
        "EMAIL_USE_TLS": not tls_on_connect,
        "EMAIL_TIMEOUT": 20,
    }
