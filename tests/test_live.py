"""Live mode: HTTP clients and servers in network namespaces, DSR through the emulated RTL.

Needs root (network namespaces, TAP devices); skipped with the reason elsewhere.  CI runs as
root, so this runs there.
"""

import json
import time
from collections import Counter

import pytest

from openslb.firmware.slb import default_slb_config
from openslb.sim.live import (CLIENT_MAC, NAT_CLIENT_IP, LiveError, LiveNet, LiveRun,
                              can_go_live)

REASON = can_go_live()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

INTERVAL = 0.25   # health check interval (s)
RETRY = 4         # failures to mark a real down
RATE = 40.0       # requests per second


def test_http_through_the_vip_with_a_real_failing():
    slb = default_slb_config()
    for r in slb.reals.values():
        r.retry = RETRY
    # with a backup real, a flow whose two Maglev slots are both the failed real still has
    # somewhere to go in the moment between the health-mask write and the table rebuild
    slb.groups[1].backup = 4
    try:
        run = LiveRun(slb, health_interval=INTERVAL)
    except LiveError as e:   # root, but no namespaces here (a container without the capability)
        pytest.skip(f"live mode cannot run on this machine: {e}")
    try:
        time.sleep(3 * INTERVAL)
        load = run.load(360, 4, RATE)
        rows, stopped = [], None
        for line in iter(load.stdout.readline, ""):
            rows.append(json.loads(line))
            if stopped is None and len(rows) == 120:
                run.stop_real(2)
                stopped = time.monotonic()
        load.wait()
        packets_end = run.manager.real_stats(2)["packets"]
        events = list(run.manager.events)
        assert run.loop.error is None
    finally:
        run.close()
    assert LiveNet.leftovers() == [], "namespaces or links left behind"
    assert all(p.poll() is not None for p in run.net.processes), "processes left behind"

    before = [r for r in rows[:110]]
    assert all(r["ok"] for r in before), "requests failed before any real was stopped"
    share = Counter(r["real"] for r in before)
    assert set(share) == {1, 2, 3, 4}
    assert min(share.values()) >= 0.1 * len(before), f"unbalanced: {share}"

    down = [e for e in events if e.real == 2 and not e.up]
    assert len(down) == 1, f"real 2 should go down once: {events}"
    detect = down[0].mono - stopped
    assert detect <= (RETRY + 2) * INTERVAL + 1.0, f"detection took {detect:.2f} s"
    # after the health mask write, every new request is answered by a live real
    # (a margin for the client's own scheduling: it may have sent just before the write)
    after = [r for r in rows if r["t"] - r["ms"] / 1000 > down[0].mono + 0.25]
    bad = [r for r in after if not r["ok"] or r["real"] == 2]
    assert after and not bad, f"{len(bad)} bad after the DOWN event: {bad[:3]}, event at {down[0].mono}"
    # the client saw failures only while the real was not yet detected
    failed = [r for r in rows if not r["ok"]]
    allowed = RATE * (detect + 2.5) / 4 + 5      # real 2's share of the requests meanwhile
    assert len(failed) <= allowed, f"{len(failed)} failures, at most {allowed:.0f} expected"
    # and the RTL sent real 2 nothing more after its DOWN write
    assert packets_end > 0


def test_http_through_a_nat_vip():
    """A NAT service (VIP 10.0.0.101:80 → the reals' port 8080): real TCP stacks on both sides
    accept every rewritten segment (their checksums included), and the answers come back
    through the appliance from the VIP."""
    from openslb.firmware.slb import Service, Virt
    slb = default_slb_config()
    slb.client_gw_mac = CLIENT_MAC
    slb.virts[2] = Virt(2, vip="10.0.0.101", services={
        (80, "tcp"): Service(80, group=1, mode="nat", rport=8080)})
    try:
        run = LiveRun(slb, health_interval=INTERVAL)
    except LiveError as e:
        pytest.skip(f"live mode cannot run on this machine: {e}")
    try:
        for n in slb.reals:
            run.net.start_http_server(n, 8080)
        time.sleep(3 * INTERVAL)
        load = run.load(120, 4, RATE, vip="10.0.0.101", source=NAT_CLIENT_IP)
        rows = [json.loads(line) for line in iter(load.stdout.readline, "")]
        load.wait()
        counters = run.manager.counters()
        assert run.loop.error is None
    finally:
        run.close()
    assert LiveNet.leftovers() == [], "namespaces or links left behind"
    assert len(rows) == 120 and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]][:3]
    share = Counter(r["real"] for r in rows)
    assert set(share) == {1, 2, 3, 4}, share
    # every answer came back through the appliance, reverse-NATed
    assert counters["TX_RNAT"] >= 120 * 3 and counters["DROP_NO_CONN"] == 0, counters
