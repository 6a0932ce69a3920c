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
    PermissionDenied,
    ServerError,
    ShoalError,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
)
from ._files import AsyncByteStream, AsyncFiles, ByteStream, Files
from ._models import (
    CommandResult,
    FileInfo,
    Health,
    Image,
    InterfaceMetrics,
    Member,
    Network,
    NetworkRef,
    Nic,
    ProcessEvent,
    ProcessInfo,
    ProcessResult,
    SandboxInfo,
    SandboxMetrics,
    SandboxRef,
    Shape,
)
from ._process import AsyncProcessHandle, ProcessHandle, ProcessStart
from ._sync import Networks, Sandbox, Sandboxes, Shoal
from ._version import __version__

__all__ = [
    "AsyncByteStream",
    "AsyncFiles",
    "AsyncNetworks",
    "AsyncProcessHandle",
    "AsyncSandbox",
    "AsyncSandboxes",
    "AsyncShoal",
    "ByteStream",
    "ClientConfig",
    "CommandError",
    "CommandResult",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "FileInfo",
    "Files",
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
    "PermissionDenied",
    "ProcessEvent",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessResult",
    "ProcessStart",
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
