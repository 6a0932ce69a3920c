"""The sync client against a real Shoal (see run.sh): every method, error mapping, exec, attach/detach."""

from __future__ import annotations

import ipaddress
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from shoal import (
    CommandError,
    Conflict,
    InvalidArgument,
    NotFound,
    Sandbox,
    Shoal,
    ShoalError,
    Unauthorized,
)

pytestmark = pytest.mark.server
Names = Callable[[str], str]


def test_health_shapes_images(client: Shoal) -> None:
    h = client.health()
    assert h.status == "ok" and h.version
    shapes = {s.name: s for s in client.shapes()}
    assert shapes["s-1vcpu-1gb"].vcpus == 1 and shapes["s-1vcpu-1gb"].memory_mb == 1024
    assert all(s.pids_limit > 0 for s in shapes.values())
    images = {i.reference: i for i in client.images()}
    assert {"busybox:1", "devbox:1"} <= images.keys()
    assert images["busybox:1"].size_bytes > 0 and images["busybox:1"].source


def test_network_lifecycle(client: Shoal, uniq: Names) -> None:
    net = client.networks.create(uniq("net"), cidr="10.99.7.0/24")
    assert net.id.startswith("net-") and net.cidr == "10.99.7.0/24" and net.members == [] and net.created_at
    try:
        assert client.networks.get(net.name) == net
        assert client.networks.get(net.id) == net
        assert client.networks.get(net) == net
        assert net.id in [n.id for n in client.networks.list()]
        assert client.networks.members(net.name) == []
        pooled = client.networks.create(uniq("pool"))
        assert ipaddress.ip_network(pooled.cidr).prefixlen == 24
        client.networks.delete(pooled.id)
    finally:
        client.networks.delete(net.name)
    with pytest.raises(NotFound):
        client.networks.get(net.id)
    assert net.id not in [n.id for n in client.networks.list()]


def test_error_mapping(client: Shoal, uniq: Names) -> None:
    with pytest.raises(NotFound) as nf:
        client.sandboxes.get("no-such-sandbox")
    assert (nf.value.status, nf.value.code) == (404, "not_found") and "no-such-sandbox" in nf.value.message
    assert isinstance(nf.value, ShoalError)
    for call in (
        lambda: client.sandboxes.delete("sbx-0000000000"),
        lambda: client.networks.get("no-such-net"),
        lambda: client.networks.delete("no-such-net"),
        lambda: client.networks.members("no-such-net"),
    ):
        with pytest.raises(NotFound):
            call()
    # A network named in a create's body that does not exist makes the body invalid: 422, not 404.
    with pytest.raises(InvalidArgument) as bad_net:
        client.sandboxes.create(rootfs="busybox:1", networks=["no-such-net"])
    assert (bad_net.value.status, bad_net.value.code) == (422, "invalid_argument")
    assert "no-such-net" in bad_net.value.message

    net = client.networks.create(uniq("dup"))
    try:
        with pytest.raises(Conflict) as cf:
            client.networks.create(net.name)
        assert (cf.value.status, cf.value.code) == (409, "conflict") and net.name in cf.value.message
    finally:
        client.networks.delete(net)

    with pytest.raises(InvalidArgument) as ia:
        client.sandboxes.create(rootfs="busybox:1", shape="s-64vcpu-1tb")
    assert (ia.value.status, ia.value.code) == (422, "invalid_argument") and "s-1vcpu-1gb" in ia.value.message
    with pytest.raises(InvalidArgument):
        client.sandboxes.create(rootfs="nosuchimage:9")
    with pytest.raises(InvalidArgument):
        client.networks.create("Bad_Name")
    with pytest.raises(InvalidArgument):
        client.networks.create(uniq("cidr"), cidr="10.0.0.1/24")

    with Shoal(api_key="shoal_wrong") as bad, pytest.raises(Unauthorized) as ua:
        bad.networks.list()
    assert (ua.value.status, ua.value.code) == (401, "unauthorized")
    # Nothing of the refused requests was left behind.
    assert not [s for s in client.sandboxes.list() if s.rootfs == "nosuchimage:9"]


def test_sandbox_create_get_list_run_delete(client: Shoal, uniq: Names) -> None:
    net = client.networks.create(uniq("run"))
    sb = client.sandboxes.create(
        rootfs="busybox:1", name=uniq("sb"), shape="s-1vcpu-256mb", networks=[net.name], env={"GREETING": "hi"}
    )
    try:
        assert isinstance(sb, Sandbox)
        assert sb.id.startswith("sbx-") and sb.state == "running" and sb.state_reason is None
        assert (sb.shape, sb.rootfs, sb.runtime) == ("s-1vcpu-256mb", "busybox:1", "container")
        assert sb.env == {"GREETING": "hi"}
        [nic] = sb.networks
        assert (nic.ifname, nic.network_id, nic.network_name) == ("eth0", net.id, net.name)
        assert ipaddress.ip_address(nic.ip) in ipaddress.ip_network(net.cidr) and nic.mac.startswith("02:5e:")
        assert sb.ip() == sb.ip(net) == sb.ip(net.id) == nic.ip

        assert client.sandboxes.get(sb.name) == sb
        assert client.sandboxes.get(sb.id) == sb
        assert sb.id in [s.id for s in client.sandboxes.list()]

        [m] = client.networks.members(net.id)
        assert (m.sandbox_id, m.sandbox_name, m.ip, m.mac, m.state) == (sb.id, sb.name, nic.ip, nic.mac, "running")
        assert m.dns_name == f"{sb.name}.{net.name}.internal"
        full = client.networks.get(net.name)
        assert full.members == [m] and full.member(sb) == m and full.member(sb.name) == m and full.member("x") is None

        r = sb.run("sh", "-c", "echo out; echo err >&2; exit 3")
        assert (r.exit_code, r.stdout, r.stderr, r.timed_out, r.ok) == (3, "out\n", "err\n", False, False)
        assert r.duration_ms >= 0
        assert sb.run("cat", stdin="hello\nworld").stdout == "hello\nworld"
        r = sb.run("sh", "-c", 'echo "$GREETING $EXTRA"; pwd', env={"EXTRA": "there"}, cwd="/tmp")
        assert (r.stdout, r.ok) == ("hi there\n/tmp\n", True)
        assert sb.run("echo", "a b", "$HOME", 3).stdout == "a b $HOME 3\n"  # no shell in between

        r = sb.run("sleep", "10", timeout=0.5)
        assert r.timed_out and r.exit_code == 137 and r.duration_ms < 5000
        r = sb.run("no-such-command")
        assert r.exit_code == 127 and "not found" in r.stderr
        with pytest.raises(CommandError) as ce:
            sb.run("sh", "-c", "echo boom >&2; exit 4", check=True)
        assert ce.value.result.exit_code == 4 and "boom" in str(ce.value)
        with pytest.raises(InvalidArgument):
            sb.run("pwd", cwd="/no/such/dir")

        with pytest.raises(Conflict):
            client.sandboxes.create(rootfs="busybox:1", name=sb.name)
        with pytest.raises(Conflict) as busy:
            client.networks.delete(net)
        assert "member" in busy.value.message

        sb.state = "stale"
        assert sb.refresh() is sb and sb.state == "running"
    finally:
        sb.delete()
    with pytest.raises(NotFound):
        sb.refresh()
    with pytest.raises(NotFound):
        client.sandboxes.delete(sb.name)
    assert client.networks.members(net) == []
    client.networks.delete(net)


def test_attach_detach(client: Shoal, uniq: Names) -> None:
    a = client.networks.create(uniq("a"))
    b = client.networks.create(uniq("b"))
    c = client.networks.create(uniq("c"))
    try:
        with client.sandboxes.create(rootfs="busybox:1", name=uniq("hop"), networks=[a]) as sb:
            assert sb.attach(b.name) is sb
            assert [(n.ifname, n.network_name) for n in sb.networks] == [("eth0", a.name), ("eth1", b.name)]
            assert sb.run("ip", "-o", "-4", "addr", "show", "eth1").stdout.count(sb.ip(b)) == 1
            assert client.networks.get(b).member(sb) is not None
            with pytest.raises(Conflict):
                sb.attach(b)

            sb.detach(a.id)
            assert [(n.ifname, n.network_name) for n in sb.networks] == [("eth1", b.name)]
            assert sb.run("ip", "link", "show", "eth0").exit_code != 0
            with pytest.raises(NotFound):
                sb.detach(a)

            sb.attach(c)  # by object: the lowest free index again
            nic = sb.nic(c)
            assert nic is not None and nic.ifname == "eth0"

            client.networks.delete(b, force=True)  # unplugs the member, which keeps running
            assert [n.network_name for n in sb.refresh().networks] == [c.name] and sb.state == "running"
    finally:
        for n in (a, c):
            client.networks.delete(n, force=True)


def test_context_manager_deletes(client: Shoal, uniq: Names) -> None:
    with client.sandboxes.create(rootfs="busybox:1", name=uniq("ctx")) as sb:
        assert sb.networks == []
        assert sb.run("hostname").stdout.strip() == sb.name
    with pytest.raises(NotFound):
        client.sandboxes.get(sb.id)

    # Also when the block fails, and without hiding that failure.
    with pytest.raises(RuntimeError, match="inside"), client.sandboxes.create(rootfs="busybox:1") as sb2:
        raise RuntimeError("inside")
    with pytest.raises(NotFound):
        client.sandboxes.get(sb2.id)

    # A sandbox deleted inside the block is fine too.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with client.sandboxes.create(rootfs="busybox:1") as sb3:
            client.sandboxes.delete(sb3.name)


def expires_in(sb: Sandbox) -> float:
    """Seconds from now until the sandbox expires."""
    assert sb.expires_at is not None
    at = datetime.fromisoformat(sb.expires_at.replace("Z", "+00:00"))
    return (at - datetime.now(timezone.utc)).total_seconds()


def test_idempotent_create(client: Shoal, uniq: Names) -> None:
    key = uniq("job")
    # Marked by an env var, since other tests may create sandboxes at the same time.
    args: dict[str, Any] = dict(rootfs="busybox:1", shape="s-1vcpu-256mb", env={"JOB": key})

    def ours() -> list[str]:
        return [s.id for s in client.sandboxes.list() if s.env.get("JOB") == key]

    first = client.sandboxes.create(**args, idempotency_key=key)
    try:
        again = client.sandboxes.create(**args, idempotency_key=key)  # e.g. a retry after a lost answer
        assert again.id == first.id and again == first
        assert ours() == [first.id], "one sandbox"
        with pytest.raises(InvalidArgument) as other:
            client.sandboxes.create(**args, name=uniq("other"), idempotency_key=key)
        assert other.value.status == 422 and "Idempotency-Key" in other.value.message
        # Without a key of one's own, every call is a new create (each with its own random key).
        with client.sandboxes.create(**args) as fresh:
            assert fresh.id != first.id
        assert ours() == [first.id]
    finally:
        first.delete()
    # The key goes with its sandbox: now it makes a new one.
    with client.sandboxes.create(**args, idempotency_key=key) as later:
        assert later.id != first.id and ours() == [later.id]
    assert ours() == []


def test_stop_start_timeout_logs_metrics(client: Shoal, uniq: Names) -> None:
    net = client.networks.create(uniq("life"))
    try:
        with client.sandboxes.create(
            rootfs="busybox:1",
            shape="s-1vcpu-256mb",
            name=uniq("life"),
            networks=[net],
            timeout_secs=600,
            on_timeout="stop",
        ) as sb:
            assert sb.on_timeout == "stop" and 500 < expires_in(sb) <= 600
            sb.run("sh", "-c", "echo kept > /root/file", check=True)

            assert sb.stop() is sb and sb.state == "stopped"
            assert client.sandboxes.get(sb.id).state == "stopped"
            with pytest.raises(Conflict) as stopped:
                sb.run("true")
            assert stopped.value.status == 409 and "stopped" in stopped.value.message
            assert sb.stop().state == "stopped", "stopping a stopped sandbox is fine"

            assert sb.start() is sb and sb.state == "running"
            assert sb.run("cat", "/root/file").stdout == "kept\n", "the filesystem was kept"
            assert f" {sb.ip(net)}/" in sb.run("ip", "-o", "-4", "addr", "show", "eth0").stdout, "and its address"
            assert sb.start().state == "running", "starting a running sandbox is fine"

            assert sb.set_timeout(7200) is sb and 7100 < expires_in(sb) <= 7200
            assert sb.on_timeout == "stop"
            assert client.sandboxes.get(sb.id).expires_at == sb.expires_at

            assert "listening on" in sb.logs()
            assert len(sb.logs(tail=1).splitlines()) <= 1

            # Some traffic out of eth0: ARP requests for an address nobody has.
            nobody = ipaddress.ip_network(net.cidr)[-2]
            sb.run("ping", "-c", "1", "-W", "1", str(nobody))
            m = sb.metrics()
            assert m.memory_bytes and m.memory_bytes > 0 and m.pids and m.pids >= 1, m
            assert m.cpu_usage_ns and m.cpu_usage_ns > 0 and m.disk_bytes > 0, m  # /root/file
            assert m.memory_limit_bytes == 256 * 1024 * 1024, m
            [eth0] = m.interfaces
            assert (eth0.ifname, eth0.network_id) == ("eth0", net.id)
            assert eth0.tx_packets > 0 and eth0.tx_bytes > 0, eth0

            with pytest.raises(InvalidArgument):
                sb.set_timeout(10**9)  # more than 30 days
    finally:
        client.networks.delete(net, force=True)


def test_timeout_stops_the_sandbox(client: Shoal) -> None:
    with client.sandboxes.create(rootfs="busybox:1", timeout_secs=1, on_timeout="stop") as sb:
        deadline = time.monotonic() + 15
        while sb.refresh().state != "stopped":
            assert time.monotonic() < deadline, f"still {sb.state} after its timeout"
            time.sleep(0.2)
        assert sb.expires_at is None, "a stop at expiry clears the timeout"
        assert sb.start().state == "running" and sb.run("true").ok
