"""cocotb testbench of the Toeplitz hasher: the published RSS vectors, then random tuples and
random keys against :func:`openslb.model.toeplitz.toeplitz`, with the enable (the parser's
stall) going low at random."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import cocotb
from amaranth.hdl import Shape
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from openslb.hw.hasher import Hasher
from openslb.hw.layouts import tuple_layout
from openslb.hw.spec import RSS_DEFAULT_KEY, maglev_indices
from openslb.model.toeplitz import flow_tuple, toeplitz

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "rss_vectors.csv"


def _pack(layout, **fields) -> int:
    word = 0
    for name, value in fields.items():
        f = layout[name]
        word |= (value & ((1 << Shape.cast(f.shape).width) - 1)) << f.offset
    return word


def _pack_tuple(tup: bytes) -> int:
    """A 12-byte RSS tuple (src IP, dst IP, src port, dst port) as the hasher's input word."""
    return _pack(tuple_layout(), src=int.from_bytes(tup[0:4], "big"),
                 dst=int.from_bytes(tup[4:8], "big"), sport=int.from_bytes(tup[8:10], "big"),
                 dport=int.from_bytes(tup[10:12], "big"))


def _vectors() -> list[tuple[str, str, int, int, int, int]]:
    lines = [line for line in VECTORS.read_text().splitlines() if not line.startswith("#")]
    return [(r["src_ip"], r["dst_ip"], int(r["src_port"]), int(r["dst_port"]),
             int(r["hash_l3"], 16), int(r["hash_l3l4"], 16))
            for r in csv.DictReader(lines) if r["family"] == "ipv4"]


@cocotb.test()
async def rss_vectors_and_random(dut) -> None:
    rng = random.Random(int(os.environ.get("OPENSLB_SEED", "1")))
    Clock(dut.clk, 6.4, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    async def run(key: bytes, table_size: int, cases: list[tuple[bytes, bool, int]]) -> None:
        """cases: (12-byte tuple, whether its ports count, expected hash).  A tuple whose ports
        do not count is presented with random port bytes, which must not change the hash.  The
        enable goes low at random (a stalled parser); the output must follow the tuples
        presented on enabled cycles."""
        await FallingEdge(dut.clk)
        dut.key.value = int.from_bytes(key, "big")
        dut.table_size.value = table_size
        await FallingEdge(dut.clk)     # the multiples of M are registered
        in_flight: list = [None] * Hasher.LATENCY   # what each stage holds, newest first
        pending = list(cases)
        checked = 0
        while checked < len(cases):
            await FallingEdge(dut.clk)
            en = rng.random() < 0.7
            case = pending[0] if pending and rng.random() < 0.8 else None
            tup = case[0] if case else bytes(rng.randrange(256) for _ in range(12))
            ports = case[1] if case else rng.random() < 0.5
            if not ports:
                tup = tup[:8] + bytes(rng.randrange(256) for _ in range(4))
            dut.tuple.value = _pack_tuple(tup)
            dut.ports.value = int(ports)
            dut.en.value = int(en)
            await RisingEdge(dut.clk)
            if en:
                in_flight = [case] + in_flight[:-1]
                if case:
                    pending.pop(0)
            await ReadOnly()
            done = in_flight[-1]
            if en and done is not None:
                tup_done, _, expect = done
                got = int(dut.hash.value)
                assert got == expect, f"{tup_done.hex()}: rtl {got:#010x}, expected {expect:#010x}"
                idx = (int(dut.idx1.value), int(dut.idx2.value))
                assert idx == maglev_indices(expect, table_size), f"{tup_done.hex()}: {idx}"
                checked += 1
        await FallingEdge(dut.clk)
        dut.en.value = 0

    cases = []
    for src, dst, sport, dport, h_l3, h_l3l4 in _vectors():
        cases.append((flow_tuple(src, dst, sport, dport), True, h_l3l4))
        cases.append((flow_tuple(src, dst, sport, dport), False, h_l3))
    await run(RSS_DEFAULT_KEY, 4093, cases)
    for _ in range(3):
        key = bytes(rng.randrange(256) for _ in range(40))
        tuples = [bytes(rng.randrange(256) for _ in range(12)) for _ in range(300)]
        with_ports = [rng.random() < 0.7 for _ in tuples]
        await run(key, rng.choice([13, 251, 4093]),
                  [(t, w, toeplitz(t if w else t[:8] + bytes(4), key))
                   for t, w in zip(tuples, with_ports)])
