"""Toeplitz hasher (NIC RSS) and Maglev index scaling, pipelined.

Ports
-----
``i``   : In(stream of meta) — classified frames.
``o``   : Out(stream of meta) — ``hash``, ``idx1`` and ``idx2`` filled in.
``key`` : In(320) — the 40-byte key, key byte 0 in bits 319:312 (``RSS_KEY0`` is the top word).
``table_size`` : In(16) — Maglev table size ``M``.

The input is the 96-bit tuple ``src IP | dst IP | src port | dst port`` (ports zero when the
frame carries none: fragments, ICMP; a zero tail equals the L3-only RSS hash).  Input bit ``i``
(MSB of byte 0 first) selects key bits ``[i, i+32)``.  Stage 1 XORs the 96 terms, stages 2 and 3
scale to the table: ``idx1 = hash[31:16] * M >> 16``, ``idx2 = hash[15:0] * M >> 16``
(:func:`openslb.hw.spec.maglev_indices`), from registered multiples of ``M`` (a change of
``table_size`` reaches them one cycle later; COMMIT drains the pipeline first, so no frame
sees a half-changed size).

Latency 3 cycles, one frame per cycle.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth import Array, Cat, Module, Mux, Signal
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
    LATENCY = 3  #: cycles from input to output register

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

        n = self.LATENCY
        stages = [Signal(meta_layout(p), name=f"st{k}") for k in range(n)]
        valid = [Signal(name=f"st{k}_valid") for k in range(n)]
        free = [Signal(name=f"free{k}") for k in range(n)]
        # stages[-1] is the output register.
        m.d.comb += [
            self.o.valid.eq(valid[-1]), self.o.payload.eq(stages[-1]),
            free[-1].eq(~valid[-1] | self.o.ready),
            self.i.ready.eq(free[0]),
        ]
        for k in range(n - 1):
            m.d.comb += free[k].eq(~valid[k] | free[k + 1])
        # Each hash bit is an XOR of 96 AND terms: four LUT levels, one stage.
        with m.If(free[0]):
            m.d.sync += [valid[0].eq(self.i.valid), stages[0].eq(meta),
                         stages[0].hash.eq(toeplitz_terms(self.key, tuple_bits, 0, TUPLE_BITS))]

        # Scaling to the table, idx = h16 * M >> 16, without a multiplier: M's multiples
        # 0..3 M are kept in registers (M is configuration), each 2-bit digit of h16 picks one
        # (one LUT level), pairs of picks are added in stage 2, the four pair sums in stage 3.
        size = self.table_size[0:p.index_bits + 1]
        multiples = [Signal(len(size) + 2, name=f"m_x{j}") for j in range(4)]
        m.d.sync += [mul.eq(size * j) for j, mul in enumerate(multiples)]
        table = Array(multiples)
        hash_ = stages[0].hash
        halves = (hash_[16:32], hash_[0:16])
        partial = [[Signal(len(size) + 4, name=f"part{h}_{k}") for k in range(4)]
                   for h in range(2)]
        with m.If(free[1]):
            m.d.sync += [valid[1].eq(valid[0]), stages[1].eq(stages[0])]
            for h, half in enumerate(halves):
                digit = [table[half[2 * d:2 * d + 2]] for d in range(8)]
                m.d.sync += [partial[h][k].eq(digit[2 * k] + (digit[2 * k + 1] << 2))
                             for k in range(4)]
        with m.If(free[2]):
            scaled = [((q[0] + (q[1] << 4)) + ((q[2] + (q[3] << 4)) << 8)) >> 16
                      for q in partial]
            m.d.sync += [valid[2].eq(valid[1]), stages[2].eq(stages[1]),
                         stages[2].idx1.eq(scaled[0]), stages[2].idx2.eq(scaled[1])]
        return m
