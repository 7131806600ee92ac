"""``make bench`` (management part): writes ``bench/results/management.json``.

- ``apply_one_real_down_s_115200``: one real of a group of 8 (M = 4093) goes down: the health
  mask write that stops its traffic at once, then the apply that rebuilds the table without it
  (only the changed slots travel, as TABLE_ENTRY words).  Bytes are counted on the wire through
  the firmware's real serial code and the bridge model; seconds are those bytes at 115200 baud
  (10 bits a byte; the bridge answers within microseconds).
- ``maglev_build_ms``: numpy population of M = 65537 with 1000 reals of random weight 1-48
  (best of 5), the plain-Python loop of the same rule, and the speed-up.
- balance (max/mean load) and disruption (share of slots moved when one of N reals leaves,
  2/N allowed, 1/N ideal) for full rebuilds and for the minimal-disruption rebalance.
"""

from __future__ import annotations

import json
import time

import numpy as np

from openslb.firmware.bus import SerialBus
from openslb.firmware.links import ModelLink
from openslb.firmware.manager import Manager
from openslb.firmware.slb import default_slb_config
from openslb.model import maglev
from openslb.model.bridge import BridgeModel
from openslb.model.device import DeviceModel

__all__ = ["management_figures"]

BAUD = 115200


def _wire_seconds(nbytes: int) -> float:
    return nbytes * 10 / BAUD


def apply_one_real_down() -> dict:
    link = ModelLink(BridgeModel(DeviceModel()))
    bus = SerialBus(link, baud=BAUD)
    manager = Manager(bus, None, default_slb_config(8))
    manager.program_applied()
    # what Manager.set_up does when the health checker marks real 3 down, step by step
    start = link.bytes_on_wire
    manager.up[3] = False
    manager.programmer.set_health(sum(1 << n for n in range(1, 9) if n != 3), 256)
    health_bytes = link.bytes_on_wire - start
    start = link.bytes_on_wire
    report = manager.program_applied()
    apply_bytes = link.bytes_on_wire - start
    total = health_bytes + apply_bytes
    return {
        "reals": 8, "table_size": 4093,
        "health_write_bytes": health_bytes,
        "health_write_s": round(_wire_seconds(health_bytes), 4),
        "table_apply_bytes": apply_bytes, "table_apply": report,
        "table_apply_s": round(_wire_seconds(apply_bytes), 3),
        "bytes": total, "seconds": round(_wire_seconds(total), 3), "target_s": 0.5,
    }


def maglev_build() -> dict:
    rng = np.random.default_rng(1)
    weights = {r: int(rng.integers(1, 49)) for r in range(1000)}
    times = []
    for _ in range(5):
        t = time.perf_counter()
        table = maglev.populate(weights, 65537)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    loop = maglev.populate_loop(weights, 65537)
    loop_s = time.perf_counter() - t
    assert (table == loop).all()
    loads = np.bincount(table[table >= 0], minlength=1000)
    quota = maglev.quotas(weights, 65537)
    return {"table_size": 65537, "reals": 1000, "ms": round(min(times) * 1e3, 1),
            "plain_loop_ms": round(loop_s * 1e3, 1), "speedup": round(loop_s / min(times), 1),
            "target_ms": 20,
            "loads_equal_weight_quotas": bool(all(loads[r] == q for r, q in quota.items()))}


def balance_and_disruption() -> dict:
    out = {}
    for n in (8, 40):
        m = 4093
        before = maglev.populate({r: 1 for r in range(n)}, m)
        loads = np.bincount(before)
        moved_full = max((before != maglev.populate({r: 1 for r in range(n) if r != g}, m)).mean()
                         for g in range(n))
        moved_min = max((before != maglev.rebalance(before, {r: 1 for r in range(n) if r != g})).mean()
                        for g in range(n))
        out[f"n{n}_m{m}"] = {"max_over_mean": round(float(loads.max() / loads.mean()), 4),
                             "moved_on_leave_full_rebuild": round(float(moved_full), 4),
                             "moved_on_leave_minimal_disruption": round(float(moved_min), 4),
                             "ideal": round(1 / n, 4), "limit": round(2 / n, 4)}
    return out


def management_figures() -> dict:
    return {"apply_one_real_down_s_115200": apply_one_real_down(),
            "maglev_build_ms": maglev_build(), "balance_disruption": balance_and_disruption()}


if __name__ == "__main__":
    print(json.dumps(management_figures(), indent=2))
