"""`consentry bench NAME ARGS...` runs bench/NAME.py with the arguments after the name."""

from __future__ import annotations

import os
import subprocess
import sys


def _consentry(*args: str, tmp: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env |= {"CONSENTRY_VAR_DIR": tmp, "CONSENTRY_DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3"}
    return subprocess.run(
        [sys.executable, "-m", "consentry", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_lists_and_passes_its_arguments_to_the_script(tmp_path):
    listed = _consentry("bench", tmp=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert "read_path" in listed.stdout.split()
    helped = _consentry("bench", "read_friends", "--help", tmp=str(tmp_path))
    assert helped.returncode == 0, helped.stderr
    assert "usage: read_friends.py" in helped.stdout  # the script's own options
    refused = _consentry("bench", "read_friends", "--no-such-option", tmp=str(tmp_path))
    assert refused.returncode != 0
    assert "read_friends.py: error: unrecognized arguments: --no-such-option" in refused.stderr


def test_bench_refuses_an_unknown_name(tmp_path):
    refused = _consentry("bench", "no_such_bench", tmp=str(tmp_path))
    assert refused.returncode != 0
    assert "no benchmark 'no_such_bench'" in refused.stderr
