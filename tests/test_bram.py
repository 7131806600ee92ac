"""The registered-read block RAM and the packet buffer built on it: cycle behaviour in Amaranth's
simulator, and the ECP5 mapping (DP16KD with the output register) at elaboration."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth.back import rtlil

from openslb.hw.bram import BlockRam, ecp5_layout
from openslb.hw.packetbuf import PacketBuffer
from openslb.hw.spec import Params
from openslb.sim.amaranth_sim import run_clocked
from openslb.sim.fpga import Ecp5Target


@pytest.mark.parametrize("dual", [False, True])
def test_block_ram_reads_two_cycles_after_the_address(dual):
    dut = BlockRam(12, 64, dual_read=dual)
    rng = random.Random(3)
    contents = [0] * 64
    problems = []

    async def bench(ctx):
        # fill, then read at random addresses while writing elsewhere
        for addr in range(64):
            contents[addr] = rng.randrange(1 << 12)
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, contents[addr])
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        history = deque(maxlen=BlockRam.LATENCY + 1)
        for _ in range(300):
            r_addr = rng.randrange(64)
            ctx.set(dut.r_addr, r_addr)
            a_addr = rng.randrange(64)
            ctx.set(dut.w_addr, a_addr)
            history.append((r_addr, a_addr, list(contents)))
            if len(history) > BlockRam.LATENCY:
                want_r, want_a, snapshot = history[0]
                if ctx.get(dut.r_data) != snapshot[want_r]:
                    problems.append(("r", want_r))
                if dual and ctx.get(dut.a_data) != snapshot[want_a]:
                    problems.append(("a", want_a))
            await ctx.tick()

    run_clocked(dut, bench)
    assert not problems, problems[:5]


def test_packet_buffer_keeps_order_under_backpressure():
    p = Params(width=8, max_frame=128)
    dut = PacketBuffer(p, depth=16)
    rng = random.Random(7)
    sent = [(rng.randrange(256), rng.randrange(2)) for _ in range(600)]
    got: list[tuple[int, int]] = []

    async def producer(ctx):
        for byte, keep in sent:
            ctx.set(dut.i.valid, 0)
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.payload, {"data": byte, "keep": keep})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(got) < len(sent):
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready and valid:
                got.append((payload.data, payload.keep))

    run_clocked(dut, producer, consumer)
    assert got == sent


def test_packet_buffer_streams_one_beat_per_cycle():
    dut = PacketBuffer(Params(width=8, max_frame=128), depth=32)
    taken = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for k in range(200):
            ctx.set(dut.i.payload, {"data": k % 256, "keep": 1})
            _, _, in_ready, out_valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            assert in_ready
            taken.append(out_valid)

    run_clocked(dut, bench)
    # after the pipeline fills, a beat leaves every cycle
    assert all(taken[10:])


@pytest.mark.parametrize("width,depth,dual,prims", [
    (8, 4096, True, 2),      # a Maglev table: 4-bit mode, two side by side
    (48, 256, False, 2),     # real MACs: 36-bit mode
    (128, 256, False, 4),    # statistics
    (72, 512, False, 2),     # the packet buffer at 64 bits
    (48, 256, True, 3),      # dual read cannot use the 36-bit mode
])
def test_ecp5_mapping_uses_output_registers(width, depth, dual, prims):
    lay = ecp5_layout(width, depth, dual)
    assert lay.count == prims and lay.depth >= depth
    text = rtlil.convert(BlockRam(width, depth, dual_read=dual), platform=Ecp5Target())
    assert text.count("cell \\DP16KD") == prims
    assert text.count('parameter \\REGMODE_B "OUTREG"') == prims


def test_ecp5_mapping_refuses_what_one_primitive_cannot_hold():
    with pytest.raises(ValueError, match="16384"):
        ecp5_layout(4, 20000)
