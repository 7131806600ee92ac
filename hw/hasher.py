"""Toeplitz hasher (NIC RSS) and Maglev index scaling: a fixed-latency pipeline that runs beside
the parser's last stages.

Ports
-----
``en``    : In(1) — advance: every stage takes its input when high (the parser drives it with its
            own stage enable, so a frame's hash leaves together with the frame's record).
``tuple`` : In(:func:`~openslb.hw.layouts.tuple_layout`) — ``src``, ``dst``, ``sport``,
            ``dport``.
``ports`` : In(1) — the tuple's ports count; 0 hashes them as zero (the frame carries none:
            fragments, ICMP; a zero tail equals the L3-only RSS hash).
``key``   : In(320) — the 40-byte key, key byte 0 in bits 319:312 (``RSS_KEY0`` is the top word).
``table_size`` : In(16) — Maglev table size ``M``.
``hash``, ``idx1``, ``idx2`` : Out — the result for the tuple presented ``LATENCY`` enabled
            cycles earlier, combinational from the third stage (a carry-save level and one
            adder): the user registers them (the parser, into its output record).
``pbind_prefix`` : In(3) — PBIND_PREFIX: how many leading bytes of the source address key a
            client binding (configuration, like the key).
``ckey``  : Out(32) — the client key of NAT flows: the Toeplitz hash of ``src | 0 | sport | 0``
            (:meth:`~openslb.model.pipeline.Appliance.client_key`), like the binding keys.
``pkey_addr``, ``pkey_port`` : Out(32) — the binding keys per VIP and per service: the Toeplitz
            hash of ``src & prefix mask | dst | 0 | 0`` and ``… | dport``
            (:meth:`~openslb.model.pipeline.Appliance.pbind_key`), XORed from the per-field
            partial sums (the hash is linear), registered at the output stage: the user picks
            one by the matched VIP's ``per_port`` (one multiplexer level).

The input is the 96-bit tuple ``src IP | dst IP | src port | dst port``.  Input bit ``i`` (MSB of
byte 0 first) selects key bits ``[i, i+32)``.  Stage 1 XORs the 96 terms in eight groups that
follow the fields (each source byte, the two halves of the destination, each port: at most 16
terms, two LUT levels);
stage 2 (after the final XOR), stage 3 and the output adder scale to the table:
``idx1 = hash[31:16] * M >> 16``, ``idx2 = hash[15:0] * M >> 16``
(:func:`openslb.hw.spec.maglev_indices`), from registered multiples of ``M`` (a change of
``table_size`` reaches them one cycle later; COMMIT drains the pipeline first, so no frame sees
a half-changed size).

Latency 3 enabled cycles (plus the user's register), one tuple per cycle.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import tuple_layout
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


def _carry_save(m: Module, a, b, c, width: int, name: str) -> tuple[Signal, Signal]:
    """3:2 compression: ``a + b + c == sum + carry`` (mod 2**width), one LUT level."""
    total, carry = Signal(width, name=f"{name}_s"), Signal(width, name=f"{name}_c")
    m.d.comb += [total.eq(a ^ b ^ c), carry.eq(((a & b) | (a & c) | (b & c)) << 1)]
    return total, carry


class Hasher(wiring.Component):
    LATENCY = 3  #: enabled cycles from ``tuple`` to ``hash``/``idx1``/``idx2``

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "en": In(1),
            "tuple": In(tuple_layout()),
            "ports": In(1),
            "key": In(KEY_BITS),
            "table_size": In(16),
            "hash": Out(32),
            "idx1": Out(params.index_bits),
            "idx2": Out(params.index_bits),
            "pbind_prefix": In(3),
            "pkey_addr": Out(32),
            "pkey_port": Out(32),
            "ckey": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = self.tuple
        tuple_bits = Signal(TUPLE_BITS)
        m.d.comb += tuple_bits.eq(Cat(t.dport, t.sport, t.dst, t.src))

        # Each hash bit is an XOR of 96 AND terms: stage 1 forms eight XORs of at most 16 terms
        # along the fields; their XOR feeds stage 2, the ports' groups only when the tuple has
        # ports (the hash is linear, so that equals hashing zero ports, and no gate sits in
        # front of stage 1).  The source bytes, the destination and the destination port are
        # also kept apart to the output, where the binding key picks from them.
        groups = {"src0": (0, 8), "src1": (8, 16), "src2": (16, 24), "src3": (24, 32),
                  "dst0": (32, 48), "dst1": (48, 64), "sport": (64, 80), "dport": (80, 96)}
        part = {name: Signal(32, name=f"xor_{name}") for name in groups}
        has_ports = Signal()
        with m.If(self.en):
            m.d.sync += [part[name].eq(toeplitz_terms(self.key, tuple_bits, lo, hi))
                         for name, (lo, hi) in groups.items()]
            m.d.sync += has_ports.eq(self.ports)
        hash_ = Signal(32)
        m.d.comb += hash_.eq(part["src0"] ^ part["src1"] ^ part["src2"] ^ part["src3"]
                             ^ part["dst0"] ^ part["dst1"]
                             ^ Mux(has_ports, part["sport"] ^ part["dport"], 0))
        # the binding keys: the kept source bytes and the destination (stage 2), then with and
        # without the destination port (stage 3, what the output shows)
        base = Signal(32)
        dport_part = Signal(32)
        with m.If(self.en):
            m.d.sync += [
                base.eq(reduce(xor, [Mux(self.pbind_prefix > k, part[f"src{k}"], 0)
                                     for k in range(4)]) ^ part["dst0"] ^ part["dst1"]),
                dport_part.eq(Mux(has_ports, part["dport"], 0)),
                self.pkey_addr.eq(base),
                self.pkey_port.eq(base ^ dport_part),
            ]
        client = Signal(32)
        with m.If(self.en):
            m.d.sync += [client.eq(part["src0"] ^ part["src1"] ^ part["src2"] ^ part["src3"]
                                   ^ Mux(has_ports, part["sport"], 0)),
                         self.ckey.eq(client)]

        # Scaling to the table, idx = h16 * M >> 16, without a multiplier: M's multiples
        # 0..3 M are kept in registers (M is configuration); in stage 2 each 2-bit digit of h16
        # picks one (one LUT level); stage 3 adds the picks in pairs and compresses three of
        # the four shifted pair sums (one carry-save level); after it, one more carry-save
        # level and a carry-propagate adder.
        size = self.table_size[0:p.index_bits + 1]
        multiples = [Signal(len(size) + 2, name=f"m_x{j}") for j in range(4)]
        # (3 M as M + 2 M: a product by a constant became a MULT18X18D, whose output reached
        # its register at 9.26 ns at 7a345f8, seed 1)
        m.d.sync += [multiples[0].eq(0), multiples[1].eq(size), multiples[2].eq(size << 1),
                     multiples[3].eq(size + (size << 1))]
        table = Array(multiples)
        halves = (hash_[16:32], hash_[0:16])
        picks = [[Signal(len(size) + 2, name=f"pick{h}_{d}") for d in range(8)] for h in range(2)]
        hash_1 = Signal(32)
        with m.If(self.en):
            m.d.sync += hash_1.eq(hash_)
            for h, half in enumerate(halves):
                m.d.sync += [pick.eq(table[half[2 * d:2 * d + 2]])
                             for d, pick in enumerate(picks[h])]
        width = len(size) + 16
        scaled = []
        hash_2 = Signal(32)
        with m.If(self.en):
            m.d.sync += hash_2.eq(hash_1)
        for h, pick in enumerate(picks):
            terms = [Signal(width, name=f"term{h}_{k}") for k in range(4)]
            m.d.comb += [t.eq((pick[2 * k] + (pick[2 * k + 1] << 2)) << (4 * k))
                         for k, t in enumerate(terms)]
            s1, c1 = _carry_save(m, terms[0], terms[1], terms[2], width, f"csa{h}a")
            regs = [Signal(width, name=f"{what}{h}") for what in ("sum", "carry", "rest")]
            with m.If(self.en):
                m.d.sync += [regs[0].eq(s1), regs[1].eq(c1), regs[2].eq(terms[3])]
            s2, c2 = _carry_save(m, regs[0], regs[1], regs[2], width, f"csa{h}b")
            scaled.append((s2 + c2)[16:width])
        m.d.comb += [self.hash.eq(hash_2), self.idx1.eq(scaled[0]), self.idx2.eq(scaled[1])]
        return m
