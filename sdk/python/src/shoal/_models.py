"""The API's JSON bodies as dataclasses (see ``crates/api/src/types.rs``).

Parsing ignores fields this version does not know, so a newer server does not break an older client.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Nic:
    """One interface of a sandbox on one network."""

    network_id: str
    network_name: str
    #: Name inside the sandbox: ``eth0``, ``eth1``, ... in join order.
    ifname: str
    ip: str
    mac: str

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Nic:
        return cls(
            network_id=d["network_id"],
            network_name=d["network_name"],
            ifname=d["ifname"],
            ip=d["ip"],
            mac=d["mac"],
        )


@dataclass
class Member:
    """A sandbox on a network, as the network sees it."""

    sandbox_id: str
    sandbox_name: str
    ip: str
    mac: str
    #: ``<sandbox-name>.<network-name>.internal``, resolvable by the network's members.
    dns_name: str
    #: The sandbox's state (``running``, ``failed``, ...).
    state: str
    joined_at: str = ""

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Member:
        return cls(
            sandbox_id=d["sandbox_id"],
            sandbox_name=d["sandbox_name"],
            ip=d["ip"],
            mac=d["mac"],
            dns_name=d.get("dns_name", ""),
            state=d.get("state", ""),
            joined_at=d.get("joined_at", ""),
        )


@dataclass
class Network:
    """A private network: an L2 segment with an IPv4 block."""

    id: str
    name: str
    cidr: str
    created_at: str
    members: list[Member] = field(default_factory=list)

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Network:
        return cls(
            id=d["id"],
            name=d["name"],
            cidr=d["cidr"],
            created_at=d["created_at"],
            members=[Member._from_json(m) for m in d.get("members") or []],
        )

    def member(self, sandbox: SandboxRef) -> Member | None:
        """The member entry of a sandbox (given as object, id or name), or ``None``.

        ``members`` is what the server said when this object was fetched: use
        ``client.networks.get(...)`` for a fresh view.
        """
        key = sandbox_key(sandbox)
        for m in self.members:
            if key in (m.sandbox_id, m.sandbox_name):
                return m
        return None


@dataclass
class CommandResult:
    """What ``Sandbox.run`` returns: the command's exit code and its complete output."""

    #: Shell convention: 128+N when killed by signal N, 127 when the command was not found.
    exit_code: int
    #: Output as UTF-8 text (invalid sequences replaced by U+FFFD).
    stdout: str
    stderr: str
    duration_ms: int
    #: True when the command ran past its timeout and was killed (``exit_code`` is then 137).
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """``exit_code == 0`` and not timed out."""
        return self.exit_code == 0 and not self.timed_out

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> CommandResult:
        return cls(
            exit_code=int(d["exit_code"]),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            duration_ms=int(d.get("duration_ms", 0)),
            timed_out=bool(d.get("timed_out", False)),
        )


@dataclass(frozen=True)
class ProcessEvent:
    """One event of a process's stream (``sb.exec(...)``, ``sb.attach(pid)``), decoded.

    ``type`` is one of:

    - ``"started"``: the process runs; ``pid`` is set.
    - ``"stdout"``, ``"stderr"``, ``"pty"``: ``data`` holds output bytes as they were read (``pty``:
      the output of a process on a pseudo-terminal). ``offset`` (background processes and attach):
      where ``data`` starts in everything the process printed.
    - ``"heartbeat"``: nothing was printed for 5 s; the stream is alive.
    - ``"exit"``: the last event; ``exit_code``, ``signal``, ``timed_out``, ``duration_ms``.
    - ``"error"``: a stdin, signal or resize request for this process could not be applied
      (``code``, ``message``); the stream goes on.
    """

    type: str
    data: bytes = b""
    offset: int | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    duration_ms: int | None = None
    code: str | None = None
    message: str | None = None

    @property
    def text(self) -> str:
        """``data`` as UTF-8 (invalid sequences replaced by U+FFFD)."""
        return self.data.decode("utf-8", "replace")

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> ProcessEvent:
        t = str(d.get("type", ""))
        if t in ("stdout", "stderr", "pty"):
            offset = d.get("offset")
            return cls(t, data=base64.b64decode(d.get("data") or ""), offset=None if offset is None else int(offset))
        if t == "started":
            return cls(t, pid=int(d["pid"]))
        if t == "exit":
            sig = d.get("signal")
            return cls(
                t,
                exit_code=int(d["exit_code"]),
                signal=None if sig is None else int(sig),
                timed_out=bool(d.get("timed_out", False)),
                duration_ms=int(d.get("duration_ms", 0)),
            )
        if t == "error":
            return cls(t, code=str(d.get("code", "")), message=str(d.get("message", "")))
        return cls(t)


@dataclass(frozen=True)
class ProcessResult:
    """How a streamed process ended (``handle.wait()``)."""

    #: 128+N when killed by signal N; 127 when the command was not found, 126 when not executable.
    exit_code: int
    #: The signal that killed it, if one did.
    signal: int | None
    #: True when it ran past its ``timeout`` and its process group was killed.
    timed_out: bool
    duration_ms: int

    @property
    def ok(self) -> bool:
        """``exit_code == 0`` and not timed out."""
        return self.exit_code == 0 and not self.timed_out


@dataclass
class ProcessInfo:
    """A background process of a sandbox (``sb.processes()``)."""

    pid: int
    cmd: str
    args: list[str]
    #: RFC 3339 timestamp.
    started_at: str
    running: bool
    #: Set once it has exited.
    exit_code: int | None
    signal: int | None
    timed_out: bool
    #: Runs on a pseudo-terminal.
    pty: bool
    #: Bytes printed so far; the last 1 MiB of them can be replayed (``sb.attach(pid, from_start=True)``).
    output_bytes: int

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> ProcessInfo:
        return cls(
            pid=int(d["pid"]),
            cmd=d["cmd"],
            args=list(d.get("args") or []),
            started_at=d.get("started_at", ""),
            running=bool(d.get("running", False)),
            exit_code=d.get("exit_code"),
            signal=d.get("signal"),
            timed_out=bool(d.get("timed_out", False)),
            pty=bool(d.get("pty", False)),
            output_bytes=int(d.get("output_bytes", 0)),
        )


@dataclass
class FileInfo:
    """A file, directory or symlink in a sandbox (``sb.files.list(...)``, ``sb.files.stat(...)``)."""

    name: str
    #: ``file``, ``dir``, ``symlink`` or ``other``.
    kind: str
    size: int
    #: Permission bits, e.g. ``0o644`` (420).
    mode: int
    #: RFC 3339 timestamp.
    modified_at: str

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> FileInfo:
        return cls(
            name=d["name"],
            kind=d["kind"],
            size=int(d.get("size", 0)),
            mode=int(d.get("mode", 0)),
            modified_at=d.get("modified_at", ""),
        )


@dataclass
class Shape:
    """A sandbox size: becomes cgroup limits."""

    name: str
    vcpus: int
    memory_mb: int
    pids_limit: int

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Shape:
        return cls(name=d["name"], vcpus=d["vcpus"], memory_mb=d["memory_mb"], pids_limit=d["pids_limit"])


@dataclass
class Image:
    """A root file system image sandboxes can start from (``rootfs=image.reference``)."""

    #: ``NAME:TAG``
    reference: str
    size_bytes: int
    created_at: str
    #: How it was made: ``busybox-static``, ``debootstrap bookworm +pkgs``, ``import file.tar``.
    source: str

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Image:
        return cls(
            reference=d["reference"],
            size_bytes=d["size_bytes"],
            created_at=d["created_at"],
            source=d.get("source", ""),
        )


@dataclass
class Health:
    status: str
    version: str

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Health:
        return cls(status=d["status"], version=d["version"])


@dataclass
class InterfaceMetrics:
    """Traffic of one interface of a sandbox (counters since the interface was made)."""

    ifname: str
    network_id: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> InterfaceMetrics:
        return cls(
            ifname=d["ifname"],
            network_id=d["network_id"],
            rx_bytes=int(d.get("rx_bytes", 0)),
            tx_bytes=int(d.get("tx_bytes", 0)),
            rx_packets=int(d.get("rx_packets", 0)),
            tx_packets=int(d.get("tx_packets", 0)),
        )


@dataclass
class SandboxMetrics:
    """What ``Sandbox.metrics()`` returns: a snapshot of the sandbox's resource use. The fields read
    from its cgroup are ``None`` when the node cannot read them."""

    #: CPU time used, in nanoseconds.
    cpu_usage_ns: int | None
    memory_bytes: int | None
    memory_limit_bytes: int | None
    #: Number of processes.
    pids: int | None
    #: Bytes written to the sandbox's own filesystem layer.
    disk_bytes: int
    #: One entry per interface (traffic as the sandbox sees it: ``rx`` is what it received).
    interfaces: list[InterfaceMetrics] = field(default_factory=list)

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> SandboxMetrics:
        return cls(
            cpu_usage_ns=d.get("cpu_usage_ns"),
            memory_bytes=d.get("memory_bytes"),
            memory_limit_bytes=d.get("memory_limit_bytes"),
            pids=d.get("pids"),
            disk_bytes=int(d.get("disk_bytes", 0)),
            interfaces=[InterfaceMetrics._from_json(i) for i in d.get("interfaces") or []],
        )


@dataclass
class SandboxInfo:
    """The fields of a sandbox. :class:`shoal.Sandbox` and :class:`shoal.AsyncSandbox` add methods."""

    id: str
    name: str
    shape: str
    rootfs: str
    #: ``creating``, ``running``, ``stopping``, ``stopped``, ``failed`` or ``deleting``.
    state: str
    runtime: str
    created_at: str
    #: One entry per network, in interface order (``eth0`` first).
    networks: list[Nic] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: Why the sandbox is ``failed``; ``None`` otherwise.
    state_reason: str | None = None
    #: When the sandbox expires (RFC 3339), if it has a timeout; ``None`` otherwise.
    expires_at: str | None = None
    #: What happens at expiry: ``delete`` or ``stop``; ``None`` without a timeout.
    on_timeout: str | None = None

    @staticmethod
    def _fields(d: dict[str, Any]) -> dict[str, Any]:
        return dict(
            id=d["id"],
            name=d["name"],
            shape=d["shape"],
            rootfs=d["rootfs"],
            state=d["state"],
            runtime=d.get("runtime", ""),
            created_at=d["created_at"],
            networks=[Nic._from_json(n) for n in d.get("networks") or []],
            env=dict(d.get("env") or {}),
            state_reason=d.get("state_reason"),
            expires_at=d.get("expires_at"),
            on_timeout=d.get("on_timeout"),
        )

    def _update(self, d: dict[str, Any]) -> None:
        for k, v in self._fields(d).items():
            setattr(self, k, v)

    def nic(self, network: NetworkRef) -> Nic | None:
        """This sandbox's interface on a network (given as object, id or name), or ``None``."""
        key = network_key(network)
        for n in self.networks:
            if key in (n.network_id, n.network_name):
                return n
        return None

    def ip(self, network: NetworkRef | None = None) -> str:
        """This sandbox's address on ``network``; without it, on its first interface.

        Raises ``LookupError`` when the sandbox is not on that network (or on none).
        """
        if network is None:
            if not self.networks:
                raise LookupError(f"sandbox `{self.name}` is on no network")
            return self.networks[0].ip
        nic = self.nic(network)
        if nic is None:
            shown = network.name if isinstance(network, Network) else network_key(network)
            raise LookupError(f"sandbox `{self.name}` is not on network `{shown}`")
        return nic.ip


#: A sandbox named by object, id or name.
SandboxRef = str | SandboxInfo | Member
#: A network named by object, id or name.
NetworkRef = str | Network | Nic


def sandbox_key(sandbox: SandboxRef) -> str:
    if isinstance(sandbox, str):
        return sandbox
    if isinstance(sandbox, Member):
        return sandbox.sandbox_id
    if isinstance(sandbox, SandboxInfo):
        return sandbox.id
    raise TypeError(f"expected a sandbox, its id or its name, not {type(sandbox).__name__}")


def network_key(network: NetworkRef) -> str:
    if isinstance(network, str):
        return network
    if isinstance(network, Nic):
        return network.network_id
    if isinstance(network, Network):
        return network.id
    raise TypeError(f"expected a network, its id or its name, not {type(network).__name__}")
