"""Selector: per-group Maglev tables in block RAM, health mask, fallback, real MAC lookup.

Ports
-----
``i``, ``o``      : In/Out(stream of meta) — hashed frames in; ``real``/``real_mac`` filled in
                    (or ``action`` DROP with reason NO_REAL) out.
``health``        : In(n_reals) — bit r = real r is up.
``group_backup``  : In(32) array — per group ``{enable[8], real[7:0]}``.
``commit``        : In(1) strobe — swap active and shadow Maglev banks.
``active_bank``   : Out(1).
``table_addr_stb``, ``table_data_stb``, ``w_data`` : register writes into the shadow bank:
                    TABLE_ADDR sets the write pointer, each TABLE_DATA writes one slot and
                    advances it (burst uploads need one write per slot).
``real_mac_stb``, ``real_sel``, ``real_mac_hi`` : REAL_MAC_LO writes one real's MAC.

Memory: ``2 × n_groups × table_stride`` slots of ``real_bits``; address
``{bank, group, index}``.  The bank is sampled when a frame is accepted, so a commit takes effect
between two lookups, never inside one.

Fallback rule (model: :meth:`Appliance.select`): the slot ``idx1`` gives the real; if it is down,
slot ``idx2`` (from the other half of the hash) is tried; if that is down too, the group's
backup real (when enabled and up); otherwise the frame is dropped as NO_REAL.  A real marked
down therefore stops receiving traffic on the very next frame after the HEALTH write.

Latency: 1 cycle for frames that need no lookup, 3 (4 with the rehash) for VIP frames; the
same numbers are the cycles per frame.
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import Action, meta_layout
from openslb.hw.spec import DropReason, Params

__all__ = ["Selector"]


class Selector(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(meta_layout(params))),
            "o": Out(stream.Signature(meta_layout(params))),
            "health": In(params.n_reals),
            "group_backup": In(32).array(params.n_groups),
            "commit": In(1),
            "active_bank": Out(1),
            "w_data": In(32),
            "table_addr_stb": In(1),
            "table_data_stb": In(1),
            "real_mac_stb": In(1),
            "real_sel": In(32),
            "real_mac_hi": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        addr_bits = 1 + p.group_bits + p.index_bits
        m.submodules.table = table = memory.Memory(
            shape=p.real_bits, depth=1 << addr_bits, init=[])
        m.submodules.macs = macs = memory.Memory(shape=48, depth=p.n_reals, init=[])
        table_rd = table.read_port()
        table_wr = table.write_port()
        mac_rd = macs.read_port()
        mac_wr = macs.write_port()

        # ---- management writes ------------------------------------------------------------
        bank = self.active_bank
        with m.If(self.commit):
            m.d.sync += bank.eq(~bank)
        wr_ptr = Signal(p.group_bits + p.index_bits)
        with m.If(self.table_addr_stb):
            m.d.sync += wr_ptr.eq(self.w_data)
        with m.Elif(self.table_data_stb):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)
        m.d.comb += [
            table_wr.en.eq(self.table_data_stb),
            table_wr.addr.eq(Cat(wr_ptr, ~bank)),
            table_wr.data.eq(self.w_data),
            mac_wr.en.eq(self.real_mac_stb),
            mac_wr.addr.eq(self.real_sel),
            mac_wr.data.eq(Cat(self.w_data, self.real_mac_hi[0:16])),
        ]

        # ---- lookups ------------------------------------------------------------------------
        cur = Signal(meta_layout(p))
        cur_bank = Signal()
        chosen = Signal(p.real_bits)
        backup = Signal(32)
        m.d.comb += backup.eq(Array(list(self.group_backup))[cur.group])
        backup_real = backup[0:p.real_bits]
        up = lambda real: self.health.bit_select(real, 1)  # noqa: E731

        out_free = Signal()
        m.d.comb += [out_free.eq(~self.o.valid | self.o.ready), mac_rd.addr.eq(chosen)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    self.i.ready.eq(out_free),
                    table_rd.addr.eq(Cat(self.i.payload.idx1, self.i.payload.group, bank)),
                ]
                with m.If(self.i.valid & out_free):
                    with m.If(self.i.payload.action == Action.VIP):
                        m.d.sync += [cur.eq(self.i.payload), cur_bank.eq(bank)]
                        m.next = "LOOK1"
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.i.payload)]
            with m.State("LOOK1"):
                real = table_rd.data
                with m.If(up(real)):
                    m.d.sync += chosen.eq(real)
                    m.d.comb += mac_rd.addr.eq(real)
                    m.next = "EMIT"
                with m.Else():
                    m.d.comb += table_rd.addr.eq(Cat(cur.idx2, cur.group, cur_bank))
                    m.next = "LOOK2"
            with m.State("LOOK2"):
                real = table_rd.data
                with m.If(up(real)):
                    m.d.sync += chosen.eq(real)
                    m.d.comb += mac_rd.addr.eq(real)
                    m.next = "EMIT"
                with m.Elif(backup[8] & up(backup_real)):
                    m.d.sync += chosen.eq(backup_real)
                    m.d.comb += mac_rd.addr.eq(backup_real)
                    m.next = "EMIT"
                with m.Else():
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(cur),
                                 self.o.payload.action.eq(Action.DROP),
                                 self.o.payload.error.eq(1),
                                 self.o.payload.reason.eq(DropReason.NO_REAL)]
                    m.next = "IDLE"
            with m.State("EMIT"):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(cur),
                             self.o.payload.real.eq(chosen),
                             self.o.payload.real_mac.eq(mac_rd.data)]
                m.next = "IDLE"
        return m
