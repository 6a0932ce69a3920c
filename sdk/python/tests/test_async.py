"""The async client against a real Shoal: the same surface, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from shoal import AsyncSandbox, AsyncShoal, Conflict, InvalidArgument, NotFound

pytestmark = [pytest.mark.server, pytest.mark.asyncio]
Names = Callable[[str], str]


async def test_async_surface(uniq: Names) -> None:
    async with AsyncShoal() as client:
        assert (await client.health()).status == "ok"
        assert "s-1vcpu-1gb" in [s.name for s in await client.shapes()]
        assert "busybox:1" in [i.reference for i in await client.images()]

        net = await client.networks.create(uniq("anet"))
        other = await client.networks.create(uniq("aother"), cidr="10.99.8.0/29")
        try:
            assert (await client.networks.get(net.name)).id == net.id
            assert net.id in [n.id for n in await client.networks.list()]
            with pytest.raises(Conflict):
                await client.networks.create(net.name)

            async with client.sandboxes.create(rootfs="busybox:1", name=uniq("asb"), networks=[net]) as sb:
                assert isinstance(sb, AsyncSandbox) and sb.state == "running"
                r = await sb.run("sh", "-c", "cat; echo e >&2; exit 5", stdin="in")
                assert (r.exit_code, r.stdout, r.stderr) == (5, "in", "e\n")
                assert (await client.sandboxes.get(sb.name)).id == sb.id
                assert sb.id in [s.id for s in await client.sandboxes.list()]
                [m] = await client.networks.members(net)
                assert m.sandbox_id == sb.id

                assert await sb.attach(other) is sb
                assert [n.network_name for n in sb.networks] == [net.name, other.name]
                assert ipaddr_in(sb.ip(other), "10.99.8.")
                await sb.detach(net)
                assert [n.ifname for n in (await sb.refresh()).networks] == ["eth1"]
                with pytest.raises(NotFound):
                    await sb.detach(net)
            with pytest.raises(NotFound):
                await client.sandboxes.get(sb.id)

            # Awaited instead of entered: delete by hand.
            sb2 = await client.sandboxes.create(rootfs="busybox:1")
            assert (await sb2.run("true")).ok
            await sb2.delete()
            with pytest.raises(NotFound):
                await client.sandboxes.delete(sb2.id)

            with pytest.raises(InvalidArgument):
                await client.sandboxes.create(rootfs="busybox:1", shape="no-such-shape")
        finally:
            await client.networks.delete(net)
            await client.networks.delete(other.id, force=True)
        with pytest.raises(NotFound):
            await client.networks.get(net.id)


async def test_async_concurrent_creates(uniq: Names) -> None:
    async with AsyncShoal() as client:
        net = await client.networks.create(uniq("conc"))
        try:
            # The first member joins alone: concurrent creates that are each the first member of a
            # network race in the node (`ip link add <bridge>`: File exists -> 500).
            first = await client.sandboxes.create(rootfs="busybox:1", networks=[net])
            sbs = [first] + list(
                await asyncio.gather(*(client.sandboxes.create(rootfs="busybox:1", networks=[net]) for _ in range(2)))
            )
            try:
                assert len({sb.ip() for sb in sbs}) == 3
                # Every member reaches every other over the network.
                pings = await asyncio.gather(*(sbs[0].run("ping", "-c", "1", "-W", "2", sb.ip()) for sb in sbs[1:]))
                assert all(p.ok for p in pings), [p.stdout + p.stderr for p in pings]
            finally:
                await asyncio.gather(*(sb.delete() for sb in sbs))
        finally:
            await client.networks.delete(net)


def ipaddr_in(ip: str, prefix: str) -> bool:
    return ip.startswith(prefix)


async def test_async_idempotent_creates_at_once(uniq: Names) -> None:
    async with AsyncShoal() as client:
        key = uniq("ajob")
        # Three at once with one key: the first makes the sandbox, the others wait for it and get it.
        sbs = await asyncio.gather(
            *(client.sandboxes.create(rootfs="busybox:1", env={"JOB": key}, idempotency_key=key) for _ in range(3))
        )
        try:
            assert len({sb.id for sb in sbs}) == 1 and all(sb.state == "running" for sb in sbs)
            assert [s.id for s in await client.sandboxes.list() if s.env.get("JOB") == key] == [sbs[0].id]
        finally:
            await sbs[0].delete()


async def test_async_lifecycle(uniq: Names) -> None:
    async with AsyncShoal() as client:
        async with client.sandboxes.create(rootfs="busybox:1", name=uniq("alife")) as sb:
            assert sb.expires_at is None and sb.on_timeout is None
            await sb.run("sh", "-c", "echo kept > /root/file")
            assert (await sb.stop()) is sb and sb.state == "stopped"
            with pytest.raises(Conflict):
                await sb.run("true")
            assert (await sb.start()).state == "running"
            assert (await sb.run("cat", "/root/file")).stdout == "kept\n"
            await sb.set_timeout(3600)
            assert sb.expires_at is not None and sb.on_timeout == "delete"
            assert "listening on" in await sb.logs()
            m = await sb.metrics()
            assert m.memory_bytes and m.pids and m.interfaces == []


async def test_async_timeout_deletes_the_sandbox() -> None:
    async with AsyncShoal() as client:
        sb = await client.sandboxes.create(rootfs="busybox:1", timeout_secs=1)
        assert sb.on_timeout == "delete"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            try:
                await sb.refresh()
            except NotFound:
                break
            assert loop.time() < deadline, f"still there ({sb.state}) after its timeout"
            await asyncio.sleep(0.2)
