"""Fixtures. The tests marked `server` need a real Shoal: `bash sdk/python/tests/run.sh` starts one
in a network namespace of its own and sets SHOAL_URL / SHOAL_API_KEY; without them they are skipped."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from shoal import Shoal


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: needs a running Shoal (SHOAL_URL and SHOAL_API_KEY)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SHOAL_URL") and os.environ.get("SHOAL_API_KEY"):
        return
    skip = pytest.mark.skip(reason="needs a real Shoal: run `bash sdk/python/tests/run.sh`")
    for item in items:
        if "server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def client() -> Iterator[Shoal]:
    with Shoal() as c:
        yield c


@pytest.fixture
def uniq() -> Callable[[str], str]:
    """Unique names, so that tests never collide (names: a-z 0-9 -, at most 63)."""
    tag = secrets.token_hex(3)
    return lambda what: f"py-{what}-{tag}"
