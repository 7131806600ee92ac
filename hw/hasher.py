"""Toeplitz hasher (NIC RSS) and Maglev index scaling, pipelined.

Ports
-----
``i``   : In(stream of meta) — classified frames.
``o``   : Out(stream of meta) — ``hash``, ``idx1`` and ``idx2`` filled in.
``key`` : In(320) — the 40-byte key, key byte 0 in bits 319:312 (``RSS_KEY0`` is the top word).
``table_size`` : In(16) — Maglev table size ``M``.

The input is the 96-bit tuple ``src IP | dst IP | src port | dst port`` (ports zero when the
frame carries none: fragments, ICMP; a zero tail equals the L3-only RSS hash).  Input bit ``i``
(MSB of byte 0 first) selects key bits ``[i, i+32)``.  Stage 1 XORs the 96 terms, stage 2
scales to the table: ``idx1 = hash[31:16] * M >> 16``, ``idx2 = hash[15:0] * M >> 16``
(:func:`openslb.hw.spec.maglev_indices`).

Latency 2 cycles, one frame per cycle.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import meta_layout
from openslb.hw.spec import Params

__all__ = ["Hasher", "toeplitz_terms"]

TUPLE_BITS = 96
KEY_BITS = 320


def toeplitz_terms(key, tuple_bits, lo: int, hi: int):
    """XOR of the key windows selected by tuple bits ``lo..hi-1`` (bit 0 = MSB of the tuple)."""
    terms = []
    for i in range(lo, hi):
        window = key[KEY_BITS - 32 - i:KEY_BITS - i]
        terms.append(Mux(tuple_bits[TUPLE_BITS - 1 - i], window, 0))
    return reduce(xor, terms)


class Hasher(wiring.Component):
    LATENCY = 2  #: cycles from input to output register

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(meta_layout(params))),
            "o": Out(stream.Signature(meta_layout(params))),
            "key": In(KEY_BITS),
            "table_size": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        meta = self.i.payload
        tuple_bits = Signal(TUPLE_BITS)
        m.d.comb += tuple_bits.eq(Cat(meta.dport, meta.sport, meta.dst, meta.src))

        stages = [Signal(meta_layout(p), name=f"st{k}") for k in range(2)]
        valid = [Signal(name=f"st{k}_valid") for k in range(2)]
        free = [Signal(name=f"free{k}") for k in range(2)]
        # stages[1] is the output register.
        m.d.comb += [
            self.o.valid.eq(valid[1]), self.o.payload.eq(stages[1]),
            free[1].eq(~valid[1] | self.o.ready),
            free[0].eq(~valid[0] | free[1]),
            self.i.ready.eq(free[0]),
        ]
        # Each hash bit is an XOR of 96 AND terms: four LUT levels, one stage.
        with m.If(free[0]):
            m.d.sync += [valid[0].eq(self.i.valid), stages[0].eq(meta),
                         stages[0].hash.eq(toeplitz_terms(self.key, tuple_bits, 0, TUPLE_BITS))]
        hash_ = stages[0].hash
        with m.If(free[1]):
            scaled_hi = (hash_[16:32] * self.table_size[0:p.index_bits + 1]) >> 16
            scaled_lo = (hash_[0:16] * self.table_size[0:p.index_bits + 1]) >> 16
            m.d.sync += [valid[1].eq(valid[0]), stages[1].eq(stages[0]),
                         stages[1].idx1.eq(scaled_hi), stages[1].idx2.eq(scaled_lo)]
        return m
