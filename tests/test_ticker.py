"""Connection time (hw/ticker.py): one tick every CONN_TICK_CYCLES cycles, none when it is 0,
CONN_TICK writes add at once, in Amaranth's simulator."""

from __future__ import annotations

import pytest

from openslb.hw.ticker import Ticker
from openslb.sim.amaranth_sim import run_clocked


@pytest.mark.parametrize("period", [1, 2, 7, 100])
def test_one_tick_every_period(period):
    dut = Ticker()
    got = {}

    async def bench(ctx):
        ctx.set(dut.tick_cycles, period)
        await ctx.tick().repeat(5)             # the reload value settles
        start = ctx.get(dut.now)
        await ctx.tick().repeat(period * 40)
        got["ticks"] = ctx.get(dut.now) - start

    run_clocked(dut, bench)
    assert abs(got["ticks"] - 40) <= 1


def test_stopped_clock_and_manual_ticks():
    dut = Ticker()
    got = []

    async def bench(ctx):
        ctx.set(dut.tick_cycles, 0)
        await ctx.tick().repeat(50)
        got.append(ctx.get(dut.now))            # no clock-driven tick
        ctx.set(dut.w_data, 1000)
        ctx.set(dut.tick, 1)
        await ctx.tick()
        ctx.set(dut.tick, 0)
        await ctx.tick().repeat(2)
        got.append(ctx.get(dut.now))            # CONN_TICK 1000 added at once
        ctx.set(dut.tick_cycles, 3)
        ctx.set(dut.w_data, 5)
        ctx.set(dut.tick, 1)
        await ctx.tick()
        ctx.set(dut.tick, 0)
        await ctx.tick().repeat(31)
        got.append(ctx.get(dut.now))            # both: 5 at once and about 10 by the clock

    run_clocked(dut, bench)
    assert got[0] == 0 and got[1] == 1000
    assert 1000 + 5 + 9 <= got[2] <= 1000 + 5 + 11


def test_now_next_is_the_next_cycles_now():
    """The connection table registers its liveness windows from ``now_next``: it must be
    exactly the ``now`` of the following cycle, through clock ticks and CONN_TICK writes."""
    dut = Ticker()
    pairs = []

    async def bench(ctx):
        ctx.set(dut.tick_cycles, 3)
        for cycle in range(60):
            writing = cycle % 17 == 5
            ctx.set(dut.tick, writing)
            ctx.set(dut.w_data, 100 + cycle if writing else 0)
            predicted = ctx.get(dut.now_next)
            await ctx.tick()
            pairs.append((predicted, ctx.get(dut.now)))

    run_clocked(dut, bench)
    assert all(predicted == now for predicted, now in pairs)
    assert pairs[-1][1] > 300      # time moved, by both kinds of tick
