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
``table_entry_stb`` : TABLE_ENTRY writes one shadow slot given in ``w_data`` (delta uploads).
``table_raddr_stb``, ``table_rdata`` : TABLE_RADDR asks for one slot of the shadow or the
                    active bank; TABLE_RDATA shows it with ``valid`` (bit 31) once read.  The
                    read borrows the table address in a cycle no lookup starts, so it never
                    delays a frame.
``real_mac_stb``, ``real_sel``, ``real_mac_hi`` : REAL_MAC_LO writes one real's MAC.
``loaded``        : Out(1) — high for one cycle when ``o`` holds a newly made decision (the
                    per-real statistics count VIP decisions here: at most one per 5 cycles,
                    even when the output has waited and then hands decisions on back to back).

Memory: one RAM of ``table_stride`` slots of ``real_bits`` per (bank, group), all read at the
same index; the frame's (bank, group) output is picked from their registered read data.  The
bank is sampled when a frame is accepted, so a commit takes effect between two lookups, never
inside one.

Fallback rule (model: :meth:`Appliance.select`): the slot ``idx1`` gives the real; if it is down,
slot ``idx2`` (from the other half of the hash) is tried; if that is down too, the group's
backup real (when enabled and up); otherwise the frame is dropped as NO_REAL.  A real marked
down therefore stops receiving traffic on the very next frame after the HEALTH write.

Latency: 1 cycle for frames that need no lookup, 5 for VIP frames (both slots are always read);
the same numbers are the cycles per frame, so a VIP frame must be at least 5 beats long for
line rate: every IPv4 frame is (34 bytes) at widths up to 64 bits.
"""

from __future__ import annotations

from amaranth import Array, C, Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
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
            "table_entry_stb": In(1),
            "table_raddr_stb": In(1),
            "table_rdata": Out(32),
            "real_mac_stb": In(1),
            "real_sel": In(32),
            "real_mac_hi": In(32),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        # One RAM per (bank, group): each is two block RAMs side by side, so its read data needs
        # no output multiplexer before the register that takes it.
        tables_rd = [[None] * p.n_groups for _ in range(2)]
        tables_wr = [[None] * p.n_groups for _ in range(2)]
        for b in range(2):
            for g in range(p.n_groups):
                mem = memory.Memory(shape=p.real_bits, depth=p.table_stride, init=[])
                m.submodules[f"table_b{b}_g{g}"] = mem
                tables_rd[b][g], tables_wr[b][g] = mem.read_port(), mem.write_port()
        table_addr = Signal(p.index_bits)
        m.submodules.macs = macs = memory.Memory(shape=48, depth=p.n_reals, init=[])
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
        # a TABLE_DATA write goes to the pointer, a TABLE_ENTRY write to the slot it names
        entry_index = self.w_data[8:8 + p.index_bits]
        entry_group = self.w_data[8 + p.index_bits:8 + p.index_bits + p.group_bits]
        wr_group = Signal(p.group_bits)
        wr_index = Signal(p.index_bits)
        wr_real = Signal(p.real_bits)
        wr_any = Signal()
        m.d.comb += [
            wr_any.eq(self.table_data_stb | self.table_entry_stb),
            wr_group.eq(Mux(self.table_entry_stb, entry_group, wr_ptr[p.index_bits:])),
            wr_index.eq(Mux(self.table_entry_stb, entry_index, wr_ptr[0:p.index_bits])),
            wr_real.eq(self.w_data[0:p.real_bits]),
        ]
        for b in range(2):
            for g in range(p.n_groups):
                rd, wr = tables_rd[b][g], tables_wr[b][g]
                m.d.comb += [
                    rd.addr.eq(table_addr),
                    wr.en.eq(wr_any & (wr_group == g) & (bank != b)),
                    wr.addr.eq(wr_index),
                    wr.data.eq(wr_real),
                ]
        # every RAM's read data, registered; the (bank, group) one is picked a cycle later
        raw = Signal(data.ArrayLayout(p.real_bits, 2 * p.n_groups))
        m.d.sync += raw.eq(Cat(*[tables_rd[b][g].data for b in range(2) for g in range(p.n_groups)]))
        m.d.comb += [
            mac_wr.en.eq(self.real_mac_stb),
            mac_wr.addr.eq(self.real_sel),
            mac_wr.data.eq(Cat(self.w_data, self.real_mac_hi[0:16])),
        ]

        # ---- lookups ------------------------------------------------------------------------
        # The table spans tens of block RAMs, so its read data and its address are each given
        # a register of their own: both slots are read back to back (idx1, then idx2), health
        # is looked up from registered real numbers, and the three candidate MACs (slot 1,
        # slot 2, backup) are read from three copies of the small MAC RAM in parallel.
        mac_rd2 = macs.read_port()
        mac_rdb = macs.read_port()
        cur = Signal(meta_layout(p))
        cur_bank = Signal()
        real1 = Signal(p.real_bits)
        real2 = Signal(p.real_bits)
        up1 = Signal()
        up2 = Signal()
        up_backup = Signal()
        backup = Signal(32)
        m.d.sync += backup.eq(Array(list(self.group_backup))[cur.group])
        backup_real = backup[0:p.real_bits]
        up = lambda real: self.health.bit_select(real, 1)  # noqa: E731
        picked = Signal(p.real_bits)
        m.d.comb += picked.eq(raw[Cat(cur.group, cur_bank)])
        # slot 2's MAC is read in the cycle its real is picked (real2 is registered at the same
        # edge as the RAM samples the address), so its address comes from the pick itself
        m.d.comb += [mac_rd.addr.eq(real1), mac_rd2.addr.eq(picked), mac_rdb.addr.eq(backup_real)]
        mac1, mac2, mac_backup = Signal(48), Signal(48), Signal(48)

        out_free = Signal()
        m.d.comb += out_free.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.loaded.eq(0)

        vip_next = Signal()
        m.d.comb += vip_next.eq(self.i.valid & (self.i.payload.action == Action.VIP))

        # The address defaults to the waiting frame's first slot whether or not it is taken this
        # cycle (a wasted read is harmless), which keeps handshakes off the RAM address path.
        m.d.comb += table_addr.eq(self.i.payload.idx1)

        # ---- management read-back of one slot -------------------------------------------
        rd_req = Signal(32)
        rd_pending = Signal()
        rd_bank = Signal()
        rd_stage = Signal(2)
        in_idle = Signal()
        steal = Signal()
        m.d.comb += steal.eq(rd_pending & in_idle & ~(out_free & vip_next) & ~rd_stage.any())
        with m.If(self.table_raddr_stb):
            m.d.sync += [rd_req.eq(self.w_data), rd_pending.eq(1), self.table_rdata.eq(0)]
        with m.If(steal):
            m.d.comb += table_addr.eq(rd_req[0:p.index_bits])
            # bank 1 = the active one, 0 = the shadow
            m.d.sync += [rd_bank.eq(rd_req[24] ^ ~bank), rd_pending.eq(0)]
        m.d.sync += rd_stage.eq(Cat(steal, rd_stage[0]))
        with m.If(rd_stage[1] & ~self.table_raddr_stb):
            rd_group = rd_req[p.index_bits:p.index_bits + p.group_bits]
            m.d.sync += self.table_rdata.eq(Cat(raw[Cat(rd_group, rd_bank)], C(0, 31 - p.real_bits), 1))

        def accept_vip():
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += [cur.eq(self.i.payload), cur_bank.eq(bank)]
            m.next = "READ2"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += in_idle.eq(1)
                with m.If(out_free & vip_next):
                    accept_vip()
                with m.Elif(out_free):
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(self.i.valid):
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.i.payload),
                                     self.loaded.eq(1)]
            with m.State("READ2"):       # read slot 2 (slot 1 is being registered)
                m.d.comb += table_addr.eq(cur.idx2)
                m.next = "PICK1"
            with m.State("PICK1"):       # slot 1 of the frame's (bank, group)
                m.d.sync += real1.eq(picked)
                m.next = "HEALTH1"
            with m.State("HEALTH1"):     # health of slot 1; slot 2 picked
                m.d.sync += [real2.eq(picked), up1.eq(up(real1))]
                m.next = "HEALTH2"
            with m.State("HEALTH2"):     # health of slot 2 and backup; MAC of slot 1 arrives
                m.d.sync += [up2.eq(up(real2)), up_backup.eq(backup[8] & up(backup_real)),
                             mac1.eq(mac_rd.data), mac2.eq(mac_rd2.data),
                             mac_backup.eq(mac_rdb.data)]
                m.next = "CHOOSE"
            with m.State("CHOOSE"):
                # waits until the output register is free (the decision queue may be full); the
                # next VIP frame may start its lookup in the same cycle the result is written
                with m.If(out_free):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(cur), self.loaded.eq(1)]
                    m.next = "IDLE"
                    with m.If(vip_next):
                        accept_vip()
                    with m.If(up1):
                        m.d.sync += [self.o.payload.real.eq(real1),
                                     self.o.payload.real_mac.eq(mac1)]
                    with m.Elif(up2):
                        m.d.sync += [self.o.payload.real.eq(real2),
                                     self.o.payload.real_mac.eq(mac2)]
                    with m.Elif(up_backup):
                        m.d.sync += [self.o.payload.real.eq(backup_real),
                                     self.o.payload.real_mac.eq(mac_backup)]
                    with m.Else():
                        m.d.sync += [self.o.payload.action.eq(Action.DROP),
                                     self.o.payload.error.eq(1),
                                     self.o.payload.reason.eq(DropReason.NO_REAL)]
        return m
