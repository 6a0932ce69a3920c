"""Runs examples/python/two_sandboxes.py as a user would, against the real Shoal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

EXAMPLES = Path(os.environ.get("SHOAL_EXAMPLES_DIR") or Path(__file__).resolve().parents[3] / "examples" / "python")


def test_two_sandboxes_example() -> None:
    script = EXAMPLES / "two_sandboxes.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    print(out.stdout)  # shown with -s
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert "api      -> http://10." in out.stdout and "HTTP 200" in out.stdout
    assert "worker.team-eval.internal" in out.stdout
    assert "OK: same network reaches the worker, another network cannot" in out.stdout


def test_example_cleaned_up() -> None:
    from shoal import Shoal

    with Shoal() as client:
        names = {s.name for s in client.sandboxes.list()}
        assert not names & {"api", "worker", "outsider"}
        assert not {n.name for n in client.networks.list()} & {"team-eval", "elsewhere"}
