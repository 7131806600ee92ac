"""Round-robin pointers: per group, the Maglev slot the next new flow takes.

Ports
-----
``group``      : In(group_bits) — the waiting frame's group.
``ptr``, ``nxt``: Out(index_bits) — that group's pointer slot and the slot after it
                 (no latency: the selector forms the frame's table addresses from them).
``advance``    : In(1) — move group ``upd_group``'s pointer on (one cycle).
``upd_group``  : In(group_bits) — must name the group for the two cycles before ``advance``
                 (the new slots are computed from the RAM in registers meanwhile).
``both``       : In(1) — the flow tried both slots: move on by two, else by one.
``table_size`` : In — M (the slots wrap at it).
``commit``     : In(1) — every pointer back on slot 0.

The pointers live in distributed RAM (one word per group: pointer and next slot); a valid bit
per group, cleared by a commit, makes a group read as slot 0 until it is next written.  An
advance is written at the clock edge, so a frame accepted in the next cycle reads the new slots
(the selector advances in step 7 of a lookup, the next frame is accepted in step 8).  The model
is :func:`~openslb.hw.spec.rr_advance`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.optional import OptionalBlock
from openslb.hw.spec import Params

__all__ = ["RoundRobin"]


class RoundRobin(OptionalBlock):
    @staticmethod
    def ports(params: Params) -> wiring.Signature:
        p = params
        return wiring.Signature({
            "group": In(p.group_bits),
            "ptr": Out(p.index_bits),
            "nxt": Out(p.index_bits),
            "advance": In(1),
            "upd_group": In(p.group_bits),
            "both": In(1),
            "table_size": In(p.index_bits + 1),
            "commit": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        bits = p.index_bits
        m.submodules.slots = slots = memory.Memory(shape=unsigned(2 * bits), depth=p.n_groups,
                                                   init=[])
        valid = Signal(p.n_groups)
        # the waiting frame's group
        rd = slots.read_port(domain="comb")
        m.d.comb += [rd.addr.eq(self.group),
                     self.ptr.eq(Mux(valid.bit_select(self.group, 1), rd.data[0:bits], 0)),
                     self.nxt.eq(Mux(valid.bit_select(self.group, 1), rd.data[bits:], 1))]
        # the advancing group: its next slot, then that plus one and plus two (mod M), in
        # registers (two cycles behind the RAM: ``upd_group`` stays put for the whole lookup,
        # and no other write comes between)
        upd = slots.read_port(domain="comb")
        m.d.comb += upd.addr.eq(self.upd_group)
        nxt = Signal(bits)
        m.d.sync += nxt.eq(Mux(valid.bit_select(self.upd_group, 1), upd.data[bits:], 1))
        size = self.table_size
        nxt0 = Signal(bits)
        nxt1 = Signal(bits)
        nxt2 = Signal(bits)
        m.d.sync += [nxt0.eq(nxt),
                     nxt1.eq(Mux(nxt + 1 >= size, 0, nxt + 1)),
                     nxt2.eq(Mux(nxt + 2 >= size, nxt + 2 - size, nxt + 2))]
        wr = slots.write_port()
        m.d.comb += [wr.addr.eq(self.upd_group), wr.en.eq(self.advance),
                     wr.data.eq(Mux(self.both, Cat(nxt1, nxt2), Cat(nxt0, nxt1)))]
        with m.If(self.commit):
            m.d.sync += valid.eq(0)
        with m.Elif(self.advance):
            m.d.sync += valid.bit_select(self.upd_group, 1).eq(1)
        return m
