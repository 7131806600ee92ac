"""The capture stage in Amaranth's simulator: for frames of every short length, with and without a
VLAN tag and with every IPv4 header length, offered with random idle gaps and taken against
random backpressure on the buffer and on the record, each record's window, VLAN flag and
one-hot place of the L4 header (``l4_sel``) are what the frame's bytes say."""

from __future__ import annotations

import random

import pytest

from openslb.hw.capture import Capture
from openslb.hw.layouts import IHL_WORDS, L3_AT, l4_sel_bit
from openslb.hw.spec import ETHERTYPE_VLAN, HEADER_WINDOW, Params
from openslb.sim.amaranth_sim import run_clocked


def _frame(rng: random.Random) -> bytes:
    """A short frame whose bytes 12..18 are often a VLAN tag and an IPv4 header's first byte."""
    n = rng.choice([rng.randrange(1, 40), rng.randrange(40, 130)])
    body = bytearray(rng.randbytes(n))
    if n > 13 and rng.random() < 0.5:
        body[12:14] = ETHERTYPE_VLAN.to_bytes(2, "big")
    if rng.random() < 0.3 and n > 13:
        body[13] = 0       # the low byte of the tag alone
    for at in L3_AT:
        if n > at and rng.random() < 0.8:
            body[at] = 0x40 | rng.randrange(16)
    return bytes(body)


def _expected(frame: bytes) -> tuple:
    window = (frame + bytes(HEADER_WINDOW))[:HEADER_WINDOW]
    vlan = int.from_bytes(window[12:14], "big") == ETHERTYPE_VLAN
    sel = 0
    words = window[L3_AT[vlan]] & 0xF
    if words in IHL_WORDS:
        sel = 1 << l4_sel_bit(int(vlan), words)
    return int.from_bytes(window, "little"), int(vlan), sel


@pytest.mark.parametrize("width", [8, 64, 128])
def test_capture_record_says_what_the_bytes_say(width):
    p = Params(width=width)
    dut = Capture(p)
    rng = random.Random(width)
    frames = [_frame(rng) for _ in range(150)]
    got: list = []

    async def source(ctx):
        for frame in frames:
            beats = [frame[i:i + p.lanes] for i in range(0, len(frame), p.lanes)]
            for k, chunk in enumerate(beats):
                while rng.random() < 0.3:           # an idle gap
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.data, int.from_bytes(chunk + bytes(p.lanes - len(chunk)),
                                                           "little"))
                ctx.set(dut.i.payload.keep, (1 << len(chunk)) - 1)
                ctx.set(dut.i.payload.last, k == len(beats) - 1)
                await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sinks(ctx):
        while len(got) < len(frames):
            ctx.set(dut.buf.ready, rng.random() < 0.7)      # backpressure on the buffer
            ctx.set(dut.o.ready, rng.random() < 0.5)        # ... and on the record
            await ctx.delay(1e-9)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                rec = ctx.get(dut.o.payload)
                got.append((ctx.get(dut.o.payload.window.as_value()), rec.vlan, rec.l4_sel))
            await ctx.tick()

    run_clocked(dut, source, sinks)
    mismatches = [(k, f.hex(), g, _expected(f)) for k, (f, g) in enumerate(zip(frames, got))
                  if g != _expected(f)]
    assert not mismatches, mismatches[:3]
