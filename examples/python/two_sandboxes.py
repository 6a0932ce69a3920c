#!/usr/bin/env python3
"""Two sandboxes on a private network, as in the design guide.

A `worker` serves /health on port 8080, an `api` on the same network calls it (by address and by
DNS name) and gets 200; an `outsider` on another network cannot reach it.

Needs a running `shoal up` with the devbox:1 image (`shoal image build devbox:1`) and the SDK
(`pip install ./sdk/python`). The URL and API key come from SHOAL_URL / SHOAL_API_KEY, else from
~/.config/shoal/config.json (written by `shoal up`).

    python3 examples/python/two_sandboxes.py
"""

from __future__ import annotations

import sys
import time

from shoal import Sandbox, Shoal


def http_status(sandbox: Sandbox, url: str, max_time: float = 2) -> tuple[int, str]:
    """Runs curl in `sandbox` and returns (curl's exit code, the HTTP status it got or '000')."""
    r = sandbox.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(max_time), url)
    return r.exit_code, r.stdout.strip()


def main() -> int:
    with Shoal() as client:
        net = client.networks.create("team-eval")
        elsewhere = client.networks.create("elsewhere")
        print(f"networks: {net.name} {net.cidr}, {elsewhere.name} {elsewhere.cidr}")
        shape = "s-1vcpu-1gb"
        try:
            with (
                client.sandboxes.create(rootfs="devbox:1", shape=shape, name="api", networks=[net]) as api,
                client.sandboxes.create(rootfs="devbox:1", shape=shape, name="worker", networks=[net]) as worker,
                client.sandboxes.create(rootfs="devbox:1", name="outsider", networks=[elsewhere]) as outsider,
            ):
                # The worker serves /health from a background process (it outlives the exec).
                worker.run(
                    "sh",
                    "-c",
                    "mkdir -p /srv && echo ok > /srv/health && "
                    "nohup python3 -m http.server 8080 --directory /srv >/dev/null 2>&1 &",
                    check=True,
                )

                # Find the worker's address among the network's members (or: worker.ip(net)).
                member = client.networks.get(net.id).member(worker)
                assert member is not None
                url = f"http://{member.ip}:8080/health"
                print(f"worker is {member.ip} ({member.dns_name}); api is {api.ip(net)}")

                deadline = time.monotonic() + 15
                while (status := http_status(api, url))[1] != "200" and time.monotonic() < deadline:
                    time.sleep(0.2)  # the server is still starting
                print(f"api      -> {url}: HTTP {status[1]}")
                by_name = http_status(api, f"http://{member.dns_name}:8080/health")
                print(f"api      -> http://{member.dns_name}:8080/health: HTTP {by_name[1]}")

                # The outsider is root in its sandbox and may add a route to the team's block, but
                # its packets stay on its own network's bridge: nothing connects the two networks.
                outsider.run("ip", "route", "add", net.cidr, "dev", outsider.networks[0].ifname)
                blocked = http_status(outsider, url)
                print(f"outsider -> {url}: curl exit {blocked[0]}, HTTP {blocked[1]}")

                ok = status[1] == "200" and by_name[1] == "200" and blocked[0] != 0 and blocked[1] != "200"
                print("OK: same network reaches the worker, another network cannot" if ok else "FAILED")
                return 0 if ok else 1
        finally:
            # The sandboxes are gone by now (the `with` deleted them); force in case of a failure.
            for n in (net, elsewhere):
                client.networks.delete(n, force=True)


if __name__ == "__main__":
    sys.exit(main())
