"""Where the client finds the API: arguments, then ``SHOAL_URL`` / ``SHOAL_API_KEY``, then the
client config file that ``shoal up`` writes on first start (same rules as the Rust SDK and CLI)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:7070"


@dataclass(frozen=True)
class ClientConfig:
    url: str
    api_key: str


def config_path() -> Path:
    """``SHOAL_CONFIG``, else ``$XDG_CONFIG_HOME/shoal/config.json``, else ``~/.config/shoal/config.json``."""
    explicit = os.environ.get("SHOAL_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path(os.environ.get("HOME") or "/root") / ".config"
    return base / "shoal" / "config.json"


def _load_file(path: Path) -> dict[str, str] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the Shoal client config {path}: {e}") from e
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"the Shoal client config {path} is not valid JSON ({e}): fix or remove it") from e
    if not isinstance(data, dict):
        raise ConfigError(f"the Shoal client config {path} must be a JSON object with `url` and `api_key`")
    return {k: v for k, v in data.items() if k in ("url", "api_key") and isinstance(v, str) and v}


def resolve(url: str | None = None, api_key: str | None = None) -> ClientConfig:
    """Explicit values win, then the environment, then the config file; the URL defaults to
    ``http://127.0.0.1:7070``. Raises :class:`ConfigError` when no API key is found."""
    url = url or os.environ.get("SHOAL_URL") or None
    api_key = api_key or os.environ.get("SHOAL_API_KEY") or None
    if url is None or api_key is None:
        path = config_path()
        try:
            file = _load_file(path) or {}
        except ConfigError:
            if api_key is None:
                raise
            file = {}  # only the URL was wanted from it: fall back to the default
        url = url or file.get("url")
        api_key = api_key or file.get("api_key")
        if api_key is None:
            raise ConfigError(
                "no Shoal API key: pass api_key=..., set SHOAL_API_KEY, or start `shoal up` once "
                f"so that it writes {path}"
            )
    return ClientConfig(url=(url or DEFAULT_URL).rstrip("/"), api_key=api_key)
