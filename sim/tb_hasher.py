"""cocotb testbench of the Toeplitz hasher: the published RSS vectors, then random tuples and
random keys against :func:`openslb.model.toeplitz.toeplitz`, under random backpressure."""

from __future__ import annotations

import ast
import csv
import os
import random
from pathlib import Path

import cocotb
from amaranth.hdl import Shape
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from openslb.hw.layouts import meta_layout
from openslb.hw.spec import RSS_DEFAULT_KEY, Params, maglev_indices
from openslb.model.toeplitz import flow_tuple, toeplitz

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "rss_vectors.csv"


def _pack(layout, **fields) -> int:
    word = 0
    for name, value in fields.items():
        f = layout[name]
        word |= (value & ((1 << Shape.cast(f.shape).width) - 1)) << f.offset
    return word


def _field(layout, word: int, name: str) -> int:
    f = layout[name]
    return word >> f.offset & ((1 << Shape.cast(f.shape).width) - 1)


def _vectors() -> list[tuple[str, str, int, int, int, int]]:
    lines = [line for line in VECTORS.read_text().splitlines() if not line.startswith("#")]
    return [(r["src_ip"], r["dst_ip"], int(r["src_port"]), int(r["dst_port"]),
             int(r["hash_l3"], 16), int(r["hash_l3l4"], 16))
            for r in csv.DictReader(lines) if r["family"] == "ipv4"]


@cocotb.test()
async def rss_vectors_and_random(dut) -> None:
    p = Params(**ast.literal_eval(os.environ.get("OPENSLB_PARAMS", "{}")))
    layout = meta_layout(p)
    rng = random.Random(int(os.environ.get("OPENSLB_SEED", "1")))
    Clock(dut.clk, 6.4, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    async def run(key: bytes, table_size: int, cases: list[tuple[bytes, bool, int]]) -> None:
        """cases: (12-byte tuple, ports_known, expected hash)"""
        await FallingEdge(dut.clk)
        dut.key.value = int.from_bytes(key, "big")
        dut.table_size.value = table_size
        results: list[tuple[int, int, int]] = []

        async def sink() -> None:
            while len(results) < len(cases):
                await FallingEdge(dut.clk)
                dut.o__ready.value = int(rng.random() < 0.6)
                await ReadOnly()
                if dut.o__valid.value and dut.o__ready.value:
                    word = dut.o__payload.value.to_unsigned()
                    results.append((_field(layout, word, "hash"), _field(layout, word, "idx1"),
                                    _field(layout, word, "idx2")))

        task = cocotb.start_soon(sink())
        for tup, ports_known, _ in cases:
            await FallingEdge(dut.clk)
            dut.i__valid.value = 0
            while rng.random() < 0.3:
                await FallingEdge(dut.clk)
            src, dst = int.from_bytes(tup[0:4], "big"), int.from_bytes(tup[4:8], "big")
            sport, dport = int.from_bytes(tup[8:10], "big"), int.from_bytes(tup[10:12], "big")
            dut.i__payload.value = _pack(layout, src=src, dst=dst, sport=sport, dport=dport,
                                         ports_known=int(ports_known))
            dut.i__valid.value = 1
            await ReadOnly()
            while not dut.i__ready.value:
                await FallingEdge(dut.clk)
                await ReadOnly()
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        await task
        for (tup, _, expect), (got, idx1, idx2) in zip(cases, results):
            assert got == expect, f"{tup.hex()}: rtl {got:#010x}, expected {expect:#010x}"
            assert (idx1, idx2) == maglev_indices(expect, table_size)

    cases = []
    for src, dst, sport, dport, h_l3, h_l3l4 in _vectors():
        cases.append((flow_tuple(src, dst, sport, dport), True, h_l3l4))
        cases.append((flow_tuple(src, dst), True, h_l3))
    await run(RSS_DEFAULT_KEY, 4093, cases)
    for _ in range(3):
        key = bytes(rng.randrange(256) for _ in range(40))
        tuples = [bytes(rng.randrange(256) for _ in range(12)) for _ in range(300)]
        await run(key, rng.choice([13, 251, 4093]), [(t, True, toeplitz(t, key)) for t in tuples])
