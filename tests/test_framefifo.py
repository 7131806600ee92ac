"""The MAC's frame FIFO (hw/mac.py ``FrameFifo``) in Amaranth's simulator: only committed frames
come out, whole and in order, under random back-pressure; a reader that is always ready gets one
byte per cycle within a frame; the writer is held off before the FIFO overflows; and on an ECP5
the bytes sit in a DP16KD read through its output register."""

from __future__ import annotations

import random

import pytest
from amaranth.back import rtlil

from openslb.hw.mac import FrameFifo
from openslb.sim.amaranth_sim import run_clocked
from openslb.sim.fpga import Ecp5Target


def _writer(dut, frames, rng, gap_p):
    """Writes each (bytes, keep) of ``frames``: kept frames are committed, the others rolled
    back; waits while ``w_any`` is low and idles at random."""
    async def bench(ctx):
        for frame, keep in frames:
            for k, byte in enumerate(frame):
                while not ctx.get(dut.w_any) or rng.random() < gap_p:
                    await ctx.tick()
                end = k == len(frame) - 1
                ctx.set(dut.w_en, 1)
                ctx.set(dut.w_data, byte)
                ctx.set(dut.commit, end and keep)
                await ctx.tick()
                ctx.set(dut.w_en, 0)
                ctx.set(dut.commit, 0)
            if not keep:
                ctx.set(dut.rollback, 1)
                await ctx.tick()
                ctx.set(dut.rollback, 0)
    return bench


def _reader(dut, want_frames, rng, ready_p, got, beats):
    """Collects frames from ``o`` (ready with probability ``ready_p``); ``beats`` gets the cycle
    number of every byte taken."""
    async def bench(ctx):
        cycle, current = 0, bytearray()
        while len(got) < want_frames and cycle < 200_000:
            ready = rng.random() < ready_p
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if ready and valid:
                beats.append(cycle)
                assert bool(payload.first) == (len(current) == 0), "first flag out of place"
                current.append(payload.data)
                if payload.last:
                    got.append(bytes(current))
                    current = bytearray()
    return bench


def _run(dut, frames, rng, gap_p, ready_p):
    got, beats = [], []
    kept = sum(keep for _, keep in frames)
    run_clocked(dut, _writer(dut, frames, rng, gap_p),
                _reader(dut, kept, rng, ready_p, got, beats))
    return got, beats


@pytest.mark.parametrize("gap_p,ready_p", [(0.0, 0.3), (0.4, 0.9), (0.2, 1.0)],
                         ids=["slow-reader", "idle-writer", "always-ready"])
def test_committed_frames_come_out_whole_and_in_order(gap_p, ready_p):
    rng = random.Random(int(gap_p * 10 + ready_p * 100))
    frames = [(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))),
               rng.random() < 0.75) for _ in range(60)]
    got, _ = _run(FrameFifo(256), frames, rng, gap_p, ready_p)
    assert got == [frame for frame, keep in frames if keep]


def test_an_always_ready_reader_gets_a_byte_every_cycle_within_a_frame():
    rng = random.Random(5)
    sizes = [64, 1, 300, 2, 200]
    frames = [(bytes(rng.randrange(256) for _ in range(n)), True) for n in sizes]
    # the FIFO holds them all: the writer finishes long before the reader would stall it
    got, beats = _run(FrameFifo(1024), frames, rng, 0.0, 1.0)
    assert [len(f) for f in got] == sizes
    at = 0
    for n in sizes:
        frame_beats = beats[at:at + n]
        assert frame_beats == list(range(frame_beats[0], frame_beats[0] + n)), \
            f"a {n}-byte frame was read with a gap"
        at += n


def test_a_slow_reader_holds_off_the_writer_and_nothing_is_lost():
    """The FIFO (64 bytes) is far smaller than the traffic: w_any must stop the writer in time
    (a write while w_any is low would be a bug in the writer, which waits for it)."""
    rng = random.Random(9)
    frames = [(bytes(rng.randrange(256) for _ in range(rng.randrange(20, 60))), True)
              for _ in range(30)]
    got, _ = _run(FrameFifo(64), frames, rng, 0.0, 0.2)
    assert got == [frame for frame, _ in frames]


def test_on_an_ecp5_the_bytes_are_read_through_the_block_rams_output_register():
    text = rtlil.convert(FrameFifo(2048), name="frame_fifo", platform=Ecp5Target())
    assert text.count("DP16KD") >= 1
    assert "OUTREG" in text
