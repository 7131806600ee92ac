"""The pick helpers (hw/picks.py): ``first_set`` (the spill-over's lowest available member, a
balanced tree) and ``one_of`` (the selector's one-hot choice, the counters' round robin: an
AND-OR), checked against plain Python for random inputs in Amaranth's simulator."""

from __future__ import annotations

import random

import pytest
from amaranth import C, Module, Signal

from openslb.hw.picks import first_set, one_of
from openslb.sim.amaranth_sim import run_clocked


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17])
def test_first_set_is_the_lowest_flagged(n):
    m = Module()
    flags = Signal(n)
    values = [Signal(8, name=f"v{k}") for k in range(n)]
    found, first = first_set([(flags[k], values[k]) for k in range(n)])
    found_out, first_out = Signal(), Signal(8)
    m.d.comb += [found_out.eq(found), first_out.eq(first)]
    m.d.sync += Signal().eq(0)      # a sync domain for the clock
    rng = random.Random(n)
    failures = []

    async def bench(ctx):
        for _ in range(300):
            bits = rng.getrandbits(n) & rng.getrandbits(n)    # sparse flags, often none
            vals = [rng.getrandbits(8) for _ in range(n)]
            ctx.set(flags, bits)
            for sig, val in zip(values, vals):
                ctx.set(sig, val)
            await ctx.delay(1e-9)
            lowest = next((k for k in range(n) if bits >> k & 1), None)
            got = (ctx.get(found_out), ctx.get(first_out))
            want_found = lowest is not None
            if got[0] != want_found or (want_found and got[1] != vals[lowest]):
                failures.append((bits, vals, got))

    run_clocked(m, bench)
    assert not failures, failures[:3]


def test_one_of_picks_the_selected_value():
    m = Module()
    selects = Signal(4)
    values = [C(v, 8) for v in (0x11, 0x22, 0x44, 0x88)]
    out = Signal(8)
    m.d.comb += out.eq(one_of([(selects[k], values[k]) for k in range(4)]))
    m.d.sync += Signal().eq(0)
    got = {}

    async def bench(ctx):
        for k in range(4):
            ctx.set(selects, 1 << k)
            await ctx.delay(1e-9)
            got[k] = ctx.get(out)
        ctx.set(selects, 0)
        await ctx.delay(1e-9)
        got["none"] = ctx.get(out)

    run_clocked(m, bench)
    assert got == {0: 0x11, 1: 0x22, 2: 0x44, 3: 0x88, "none": 0}
