"""Configuration comes from CONSENTRY_* variables; unsafe production settings refuse to
start with a message naming the setting."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from consentry import config
from consentry.cli import translate

GOOD_KEY = "k" * 50


def _config(**overrides: object) -> config.Config:
    values: dict[str, object] = {
        "debug": False,
        "secret_key": GOOD_KEY,
        "database_url": "sqlite:///x",
        "redis_url": "",
        "public_url": "https://consentry.example",
        "allowed_hosts": ["consentry.example"],
        "var": Path("var"),
    }
    values.update(overrides)
    return config.Config(**values)  # type: ignore[arg-type]


def test_safe_production_settings_pass():
    config.check_safe(_config())
    config.check_safe(_config(public_url="http://127.0.0.1:8000"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret_key": "short"}, "CONSENTRY_SECRET_KEY"),
        ({"secret_key": "django-insecure-" + "x" * 40}, "CONSENTRY_SECRET_KEY"),
        ({"allowed_hosts": ["*"]}, "CONSENTRY_ALLOWED_HOSTS"),
        ({"public_url": "http://consentry.example"}, "HTTPS"),
    ],
)
def test_unsafe_production_setting_refuses_to_start(overrides, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        config.check_safe(_config(**overrides))


def test_debug_mode_allows_development_settings():
    config.check_safe(_config(debug=True, secret_key="short", public_url="http://dev.example"))


def test_secret_key_is_generated_once_with_private_mode(tmp_path):
    path = tmp_path / "secret_key"
    first = config.read_or_create_secret(path)
    assert len(first) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.read_or_create_secret(path) == first


def test_unsafe_process_start_prints_the_reason(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {
        "CONSENTRY_VAR_DIR": str(tmp_path),
        "CONSENTRY_ALLOWED_HOSTS": "*",
        "CONSENTRY_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "consentry", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refuses to start" in result.stderr
    assert "CONSENTRY_ALLOWED_HOSTS" in result.stderr


def test_cli_maps_two_word_commands():
    assert translate(["world", "generate", "--people", "5"]) == ["world_generate", "--people", "5"]
    assert translate(["ledger", "verify"]) == ["ledger_verify"]
    assert translate(["apps", "create", "--name", "x"]) == ["apps", "create", "--name", "x"]
    assert translate(["serve", "--port", "1"]) == ["serve", "--port", "1"]


def test_bench_command_lists_the_benchmarks(capsys):
    from consentry.cli import main

    assert translate(["bench", "read_friends"]) == ["bench", "read_friends"]
    main(["bench"])
    listed = capsys.readouterr().out.split()
    assert {"read_friends", "ledger_append", "ledger_query", "world_generate"} <= set(listed)
