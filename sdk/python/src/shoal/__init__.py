"""Python client for Shoal, a self-hosted sandbox platform.

>>> from shoal import Shoal
>>> client = Shoal()                      # URL + API key from args, env or ~/.config/shoal
>>> net = client.networks.create("team-eval")
>>> with client.sandboxes.create(rootfs="devbox:1", networks=[net]) as sb:
...     print(sb.run("echo", "hello").stdout)
"""

from ._async import AsyncNetworks, AsyncSandbox, AsyncSandboxes, AsyncShoal, SandboxCreation
from ._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from ._config import DEFAULT_URL, ClientConfig, config_path, resolve
from ._errors import (
    CommandError,
    ConfigError,
    Conflict,
    ConnectError,
    InvalidArgument,
    NotFound,
    ServerError,
    ShoalError,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
)
from ._models import (
    CommandResult,
    Health,
    Image,
    InterfaceMetrics,
    Member,
    Network,
    NetworkRef,
    Nic,
    SandboxInfo,
    SandboxMetrics,
    SandboxRef,
    Shape,
)
from ._sync import Networks, Sandbox, Sandboxes, Shoal
from ._version import __version__

__all__ = [
    "AsyncNetworks",
    "AsyncSandbox",
    "AsyncSandboxes",
    "AsyncShoal",
    "ClientConfig",
    "CommandError",
    "CommandResult",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Health",
    "Image",
    "InterfaceMetrics",
    "InvalidArgument",
    "Member",
    "Network",
    "NetworkRef",
    "Networks",
    "Nic",
    "NotFound",
    "Sandbox",
    "SandboxCreation",
    "SandboxInfo",
    "SandboxMetrics",
    "SandboxRef",
    "Sandboxes",
    "ServerError",
    "Shape",
    "Shoal",
    "ShoalError",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "config_path",
    "resolve",
]
