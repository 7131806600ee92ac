"""The FIFO with a registered read side: order, level, latency, room and one word per cycle,
cycle by cycle in Amaranth's simulator against a deque."""

from __future__ import annotations

import random
from collections import deque

import pytest

from openslb.hw.regfifo import RegisteredFifo
from openslb.sim.amaranth_sim import run_clocked


@pytest.mark.parametrize("depth, p_write, p_read",
                         [(4, 0.7, 0.5), (8, 0.5, 0.9), (3, 0.9, 0.3), (4, 1.0, 1.0)])
def test_registered_fifo_matches_a_deque(depth, p_write, p_read):
    dut = RegisteredFifo(16, depth)
    rng = random.Random(depth)
    problems = []
    counts = {"written": 0, "read": 0}

    async def bench(ctx):
        model: deque[int] = deque()
        word = 0
        for cycle in range(3000):
            write = rng.random() < p_write
            read = rng.random() < p_read
            ctx.set(dut.w_en, write)
            ctx.set(dut.w_data, word)
            ctx.set(dut.r_en, read)
            w_rdy = ctx.get(dut.w_rdy)
            # what the read side shows: the model's head
            visible = list(model)
            if ctx.get(dut.r_rdy) != bool(visible):
                problems.append((cycle, "r_rdy", ctx.get(dut.r_rdy), len(model)))
            if visible and ctx.get(dut.r_data) != visible[0]:
                problems.append((cycle, "r_data", ctx.get(dut.r_data), visible[0]))
            if ctx.get(dut.level) != len(model):
                problems.append((cycle, "level", ctx.get(dut.level), len(model)))
            # room is promised for depth - 2 words at least, and never beyond depth
            if (w_rdy and len(model) >= depth) or (not w_rdy and len(model) < depth - 2):
                problems.append((cycle, "w_rdy", w_rdy, len(model)))
            await ctx.tick()
            if write and w_rdy:
                model.append(word)
                counts["written"] += 1
                word = (word + 1) & 0xFFFF
            if read and visible:
                model.popleft()
                counts["read"] += 1
            if problems:
                return

    run_clocked(dut, bench)
    assert not problems, problems[:5]
    # the run exercised both the bypass and the storage, and filled it
    assert counts["written"] > 500 and counts["read"] > 500
    if p_write == p_read == 1.0:    # a word in and a word out in every cycle
        assert counts["read"] >= 3000 - 2


def test_a_write_into_an_empty_fifo_is_readable_the_next_cycle():
    dut = RegisteredFifo(8, 4)
    seen = []

    async def bench(ctx):
        ctx.set(dut.w_data, 0x5A)
        ctx.set(dut.w_en, 1)
        seen.append(ctx.get(dut.r_rdy))
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        seen.append((ctx.get(dut.r_rdy), ctx.get(dut.r_data)))

    run_clocked(dut, bench)
    # not in the cycle of the write, then held until read
    assert seen == [0, (1, 0x5A)]


def test_depth_below_three_is_refused():
    with pytest.raises(ValueError, match="depth >= 3"):
        RegisteredFifo(8, 2)
