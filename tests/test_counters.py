"""The global counters (hw/counters.py) in Amaranth's simulator: accumulators moved round robin
into 64-bit totals in a LUT RAM, and a snapshot that is one moment for every counter.

An event on every cycle (or with random gaps), of random lengths (the largest amounts an
accumulator must hold), snapshots at random moments, some back to back, one right after reset:
every COUNTER word read ``SNAPSHOT_CYCLES`` later equals the sum of the events before the
strobe's cycle, for every counter checked, while events keep coming."""

from __future__ import annotations

import random

import pytest

from openslb.hw.counters import Counters
from openslb.hw.layouts import Action
from openslb.hw.spec import COUNTERS, SNAPSHOT_CYCLES, DropReason, Params
from openslb.sim.amaranth_sim import run_clocked

CHECKED = ("RX_FRAMES", "RX_BYTES", "TX_HOST", "TX_SERVER", "DROP_RUNT", "RX_ARP")


def _counts(event: dict) -> dict[str, int]:
    """What one event adds to the checked counters (the rules of Counters._increments)."""
    return {"RX_FRAMES": 1, "RX_BYTES": event["length"],
            "TX_HOST": int(event["action"] == Action.HOST),
            "TX_SERVER": int(event["action"] == Action.VIP),
            "DROP_RUNT": int(event["action"] == Action.DROP
                             and event["reason"] == DropReason.RUNT),
            "RX_ARP": event["is_arp"]}


@pytest.mark.parametrize("gaps", [0.0, 0.5])
def test_snapshots_are_one_moment_for_every_counter(gaps):
    dut = Counters(Params())
    rng = random.Random(int(gaps * 10) + 1)
    problems: list[str] = []

    async def read_all(ctx) -> dict[str, int]:
        out = {}
        for name in CHECKED:
            n = COUNTERS.index(name)
            words = []
            for half in (0, 1):
                ctx.set(dut.counter_index, 2 * n + half)
                words.append(ctx.get(dut.counter))
            out[name] = words[0] | words[1] << 32
        return out

    async def bench(ctx):
        totals = dict.fromkeys(CHECKED, 0)
        pending_checks = []       # (cycle to read at, expected totals)
        for cycle in range(1500):
            # the snapshot strobe: the events of the cycles before this one are in it
            strobe = cycle in (1, 2) or rng.random() < 0.02
            ctx.set(dut.snapshot, int(strobe))
            if strobe:
                pending_checks = [c for c in pending_checks if c[0] <= cycle]
                pending_checks.append((cycle + SNAPSHOT_CYCLES, dict(totals)))
            valid = rng.random() >= gaps
            event = {"action": rng.choice([Action.DROP, Action.HOST, Action.VIP]),
                     "reason": rng.choice(list(DropReason)), "is_arp": rng.randrange(2),
                     "length": rng.choice([0xFFFF, rng.randrange(0x10000)])}
            ctx.set(dut.ev_valid, int(valid))
            for field, value in event.items():
                ctx.set(getattr(dut.ev, field), value)
            if valid:
                for name, amount in _counts(event).items():
                    totals[name] += amount
            while pending_checks and pending_checks[0][0] == cycle:
                _, expected = pending_checks.pop(0)
                got = await read_all(ctx)
                if got != expected:
                    problems.append(f"cycle {cycle}: {got} != {expected}")
            await ctx.tick()

    run_clocked(dut, bench)
    assert not problems, problems[:3]
