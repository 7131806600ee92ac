"""Selector: per-group Maglev tables in block RAM, health mask, fallback, real MAC lookup.

Ports
-----
``i``, ``o``      : In/Out(stream of meta) — hashed frames in; ``real``/``real_mac`` filled in
                    (or ``action`` DROP with reason NO_REAL) out.
``health``        : In(n_reals) — bit r = real r is up.
``o_ready_next``  : In(1) — what ``o.ready`` will be in the next cycle (the consumer's ready is
                    a register: this is its input), so that whether the output register is
                    free is a register too, in front of the decision's wide load enables.
``o_mac_swap``, ``o_mac_alt`` : Out — beside ``o``: when ``o_mac_swap`` is set, leastconns swapped
                    the second candidate in for the first, and the real's MAC is ``o_mac_alt``,
                    not ``o.payload.real_mac`` (the first's); the consumer picks.  (The swap
                    comes from the compare in the lookup's last step; it then reaches the 8
                    bits of the real, not 56.)
``group_backup``  : In(32) array — per group ``{enable[8], real[7:0]}``.
``commit``        : In(1) strobe — swap active and shadow Maglev banks.
``active_bank``   : Out(1).
``table_addr_stb``, ``table_data_stb``, ``w_data`` : register writes into the shadow bank:
                    TABLE_ADDR sets the write pointer, each TABLE_DATA writes one slot and
                    advances it (burst uploads need one write per slot).
``table_entry_stb`` : TABLE_ENTRY writes one shadow slot given in ``w_data`` (delta uploads).
``table_raddr_stb``, ``table_rdata`` : TABLE_RADDR asks for one slot of the shadow or the
                    active bank; TABLE_RDATA shows it with ``valid`` (bit 31) once read.  The
                    read borrows the table address in an idle cycle with no frame waiting, so
                    it never delays a frame.
``real_mac_stb``, ``real_sel``, ``real_mac_hi`` : REAL_MAC_LO writes one real's MAC.
``loaded``        : Out(1) — high for one cycle when ``o`` holds a newly made decision (the
                    per-real statistics count VIP decisions here: at most one per 8 cycles,
                    even when the output has waited and then hands decisions on back to back).
``conn_enable``, ``conn_timeouts``, ``conn_tick_cycles``, ``conn_tick``, ``conn_flush``,
``conn_now``, ``conn_flushing``, ``pbind_timeout`` : the connection table's and the client
                    bindings' registers (:class:`~openslb.hw.conntable.ConnTable`, twice).
``table_size``    : In — M (the round-robin pointers wrap at it).
``real_limit_stb``, ``real_conns`` : REAL_LIMIT writes (``w_data``, real ``real_sel``) and the
                    REAL_CONNS word.
``member_sel``, ``member_data_stb`` : MEMBER_DATA writes a word of a group's membership mask
                    into the shadow bank.

Memory: per bank, :class:`~openslb.hw.bram.BlockRam` slices of up to 16384 words, each holding
the tables of ``16384 // table_stride`` groups one after another (port A reads slot 1, port B
slot 2), all read at the same word; the frame's (bank, slice) result is picked from their
registered read data.  Sharing RAMs keeps the read bits gathered from the block RAMs, which are
spread over the whole die, few (on an ECP5, 1 bit per primitive and port).  Table writes only ever go to
the shadow bank, and lookups only use the active bank's data, so a write never delays a
lookup.  The bank is sampled when a frame is accepted, so a commit takes effect between two
lookups, never inside one.

Timing: every RAM address, write enable and write word comes straight from a register (the
tables span tens of block RAMs across the die), and every RAM read lands in a register before
any logic uses it.

Return traffic (action RNAT, from the server side) takes a lookup round too: its NAT entry (found
by the client key, whatever the VIP) gives the VIP entry and real, and the frame is dropped as
NO_CONN without one; it changes no entry.

Connection table (:class:`~openslb.hw.conntable.ConnTable`): a tracked frame (a VIP frame of a
TCP/UDP flow with known ports, table enabled) looks its flow up in the same 8 cycles as the
Maglev slots: from step 5 the table's answer is in registers, its real's health bit and MAC are
read beside the Maglev reals', and a live entry whose real is up decides the frame.  The entry
is written back (learned or refreshed) when the decision is handed on, before the next lookup
reads the table.  Client bindings (pbind) are a second table of the same kind, keyed by the
parser's binding key and looked up at the same time; a live binding whose real is up decides a
frame that its connection entry does not.

Metrics (GROUP_METRIC, model: :meth:`Appliance.select`): a new flow (a tracked TCP SYN or
UDP datagram whose entry does not decide it; the record comes marked by :func:`mark_new_flow`
with its group's metric) of a ``ROUNDROBIN`` group reads its group's two
pointer slots instead of its hash's (the pointer moves on in step 7, in time for the next
frame); of a ``LEASTCONNS`` group it takes the second slot when that real has fewer connections
per weight (counts and weights read in step 5, registered in 6, cross-multiplied in 7,
compared in 8).  A new
flow skips a real at its ``maxcon`` (full bits read like the health bits); turned away by a
full real, it spills over to the group's lowest-numbered member (MEMBER_DATA) that is up and
has room, then goes to the backup, and is dropped as MAXCON when none can take it.
:class:`~openslb.hw.conncount.ConnCount` keeps the counts, moved by the connection table's
writes; :class:`~openslb.hw.roundrobin.RoundRobin` the pointers.

Stateless profile (``Params.stateful`` false): the connection table, the client bindings, the
connection counts and the round-robin pointers are left out, with the two MAC RAMs that serve
the table's and the bindings' reals; their ports stay undriven and read as 0 (no hit, no count,
not full), so everything that reads them folds away, and ``conn_enable`` is 0.

Fallback rule (model: :meth:`Appliance.select`): the slot ``idx1`` gives the real; if it is down,
slot ``idx2`` (from the other half of the hash) is tried; if that is down too, the group's
backup real (when enabled and up); otherwise the frame is dropped as NO_REAL.  A real marked
down therefore stops receiving traffic on the very next frame after the HEALTH write.

Latency: 1 cycle for frames that need no lookup, 9 for VIP frames (accept, RAM read, RAM output
register, read register, pick, health and full slices and MAC read, each real's standing (from
its health and full bits) and MAC output register, MAC register and the choice registered,
choose); a VIP frame takes 8 cycles of the selector, so it must be at least 8 beats long for
line rate: a minimum Ethernet frame (60 bytes) is 8 beats at 64 bits.  A new
flow that spills over (maxcon) takes 3 more (its real's MAC is read after the choice).
"""

from __future__ import annotations

from dataclasses import replace

from amaranth import Array, C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.conncount import ConnCount
from openslb.hw.conntable import ConnTable, opens_connection
from openslb.hw.picks import first_set, one_of
from openslb.hw.roundrobin import RoundRobin
from openslb.hw.layouts import Action, meta_layout, register_view
from openslb.hw.spec import (PROTO_TCP, PROTO_UDP, WEIGHT_BITS, ConnTimeout, DropReason,
                             Metric, Params, member_words)
from openslb.hw.ticker import Ticker

__all__ = ["Selector", "mark_new_flow"]

#: Words of the largest table RAM (one ECP5 DP16KD in its 1-bit mode).
MAX_SLICE_WORDS = 16384


class Selector(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(meta_layout(params))),
            "o": Out(stream.Signature(meta_layout(params))),
            "o_ready_next": In(1),
            "o_mac_swap": Out(1),
            "o_mac_alt": Out(48),
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
            "conn_enable": In(1),
            "conn_timeouts": In(11).array(len(ConnTimeout)),
            "conn_tick_cycles": In(32),
            "conn_tick": In(1),
            "conn_flush": In(1),
            "conn_now": Out(32),
            "conn_flushing": Out(1),
            "pbind_timeout": In(11),
            "table_size": In(params.index_bits + 1),
            "real_limit_stb": In(1),
            "real_conns": Out(32),
            "member_sel": In(32),
            "member_data_stb": In(1),
        })

    LATENCY_VIP = 9  #: cycles from accepting a VIP frame to its decision in the output register
    CYCLES_VIP = 8   #: cycles between two VIP frames
    SPILL_CYCLES = 3  #: extra cycles of a new flow that spills over (its real's MAC is read)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        # Groups share RAMs, their tables one after another (up to one block RAM's 16384
        # words), so a lookup gathers few read bits from the RAMs spread over the die.
        per_slice = min(p.n_groups, max(1, MAX_SLICE_WORDS // p.table_stride))
        sub_bits = (per_slice - 1).bit_length()
        slices = p.n_groups // per_slice
        rams = [[BlockRam(p.real_bits, per_slice * p.table_stride, dual_read=True)
                 for _ in range(slices)] for _ in range(2)]
        for b in range(2):
            for sl in range(slices):
                m.submodules[f"table_b{b}_s{sl}"] = rams[b][sl]

        def slot(index, group):
            """A group's slot: the RAM word address and the slice holding it."""
            return Cat(index, group[0:sub_bits]), group[sub_bits:]
        # the connection table, and the client bindings: a second table of the same kind keyed
        # by the binding key, every entry a "UDP" one (learned from any frame, one timeout)
        m.submodules.ticker = ticker = Ticker()
        m.d.comb += [ticker.tick_cycles.eq(self.conn_tick_cycles), ticker.tick.eq(self.conn_tick),
                     ticker.w_data.eq(self.w_data), self.conn_now.eq(ticker.now)]
        conn = _block(m, "conn", ConnTable, p)
        persist = _block(m, "persist", ConnTable, replace(p, conn_buckets=p.pbind_buckets))
        for table in (conn, persist):
            m.d.comb += [table.now.eq(ticker.now), table.now_next.eq(ticker.now_next),
                         table.flush.eq(self.conn_flush)]
        m.d.comb += self.conn_flushing.eq(conn.flushing | persist.flushing)
        m.d.comb += [conn.timeouts[k].eq(self.conn_timeouts[k]) for k in range(len(ConnTimeout))]
        m.d.comb += [persist.timeouts[k].eq(self.pbind_timeout) for k in range(len(ConnTimeout))]
        # the connection counts per real (leastconns, maxcon), moved by the connection table
        count = _block(m, "count", ConnCount, p)
        m.d.comb += [
            count.inc.eq(conn.count_inc), count.inc_real.eq(conn.count_inc_real),
            count.inc_next.eq(conn.count_inc_next),
            count.inc_real_next.eq(conn.count_inc_real_next),
            count.dec.eq(conn.count_dec), count.dec_real.eq(conn.count_dec_real),
            count.scrub.eq(conn.count_scrub), conn.scrub_hold.eq(count.busy),
            count.limit_stb.eq(self.real_limit_stb), count.w_data.eq(self.w_data),
            count.real_sel.eq(self.real_sel), self.real_conns.eq(count.sel_conns),
            persist.scrub_hold.eq(0),
        ]
        m.d.comb += [count.scrub_reals[w].eq(conn.count_scrub_reals[w])
                     for w in range(p.conn_ways)]
        # five copies of the real → MAC RAM: slot 1's, slot 2's, the backup's, the connection's
        # and the binding's real's MAC in parallel (the stateless profile has no last two)
        macs = [BlockRam(48, p.n_reals) for _ in range(5 if p.stateful else 3)]
        for k, ram in enumerate(macs):
            m.submodules[f"macs{k}"] = ram

        bank = self.active_bank
        with m.If(self.commit):
            m.d.sync += bank.eq(~bank)

        # round robin: per group, the slot the next new flow takes and the one after it (both
        # back to 0 and 1 at every commit: a new table starts from its first slot)
        rr = _block(m, "rr", RoundRobin, p)
        m.d.comb += [rr.commit.eq(self.commit), rr.table_size.eq(self.table_size)]

        # ---- management writes, registered before they reach the RAMs ----------------------
        wr_ptr = Signal(p.group_bits + p.index_bits)
        with m.If(self.table_addr_stb):
            m.d.sync += wr_ptr.eq(self.w_data)
        with m.Elif(self.table_data_stb):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)
        # a TABLE_DATA write goes to the pointer, a TABLE_ENTRY write to the slot it names
        table_entry = register_view("TABLE_ENTRY", self.w_data, p)
        entry_index, entry_group = table_entry.index, table_entry.group
        wr_any = Signal()
        wr_group = Signal(p.group_bits)
        wr_index = Signal(p.index_bits)
        m.d.comb += [
            wr_any.eq(self.table_data_stb | self.table_entry_stb),
            wr_group.eq(Mux(self.table_entry_stb, entry_group, wr_ptr[p.index_bits:])),
            wr_index.eq(Mux(self.table_entry_stb, entry_index, wr_ptr[0:p.index_bits])),
        ]
        w_word = Signal(p.real_bits)
        m.d.sync += w_word.eq(self.w_data[0:p.real_bits])
        mac_we = Signal()
        mac_addr = Signal(p.real_bits)
        mac_word = Signal(48)
        m.d.sync += [mac_we.eq(self.real_mac_stb), mac_addr.eq(self.real_sel),
                     mac_word.eq(Cat(self.w_data, self.real_mac_hi[0:16]))]
        for ram in macs:
            m.d.comb += [ram.w_en.eq(mac_we), ram.w_addr.eq(mac_addr), ram.w_data.eq(mac_word)]

        # ---- RAM addresses: port A of each bank (a write to the shadow bank, else slot 1 of
        # the lookup), port B (slot 2 of the lookup, or a management read-back) ---------------
        word_bits = p.index_bits + sub_bits
        next_a = Signal(word_bits)
        next_b = Signal(word_bits)
        addr_a = [Signal(word_bits, name=f"addr_a_b{b}") for b in range(2)]
        addr_b = Signal(word_bits)
        m.d.sync += addr_b.eq(next_b)
        wr_word, wr_slice = slot(wr_index, wr_group)
        for b in range(2):
            writing = wr_any & (bank != b)
            m.d.sync += addr_a[b].eq(Mux(writing, wr_word, next_a))
            for sl in range(slices):
                we = Signal(name=f"we_b{b}_s{sl}")
                m.d.sync += we.eq(writing & (wr_slice == sl))
                m.d.comb += [rams[b][sl].w_en.eq(we), rams[b][sl].w_addr.eq(addr_a[b]),
                             rams[b][sl].w_data.eq(w_word), rams[b][sl].r_addr.eq(addr_b)]
        # every RAM's read data, registered; the (bank, slice) one is picked a cycle later
        n_tables = 2 * slices
        raw_a = Signal(data.ArrayLayout(p.real_bits, n_tables))
        raw_b = Signal(data.ArrayLayout(p.real_bits, n_tables))
        m.d.sync += [
            raw_a.eq(Cat(*[rams[b][sl].a_data for b in range(2) for sl in range(slices)])),
            raw_b.eq(Cat(*[rams[b][sl].r_data for b in range(2) for sl in range(slices)])),
        ]

        # ---- lookups ------------------------------------------------------------------------
        cur = Signal(meta_layout(p))
        cur_bank = Signal()
        # one-hot lookup step: bit 0 idle, bits 1..8 the steps of a VIP lookup
        onehot = Signal(self.CYCLES_VIP + self.SPILL_CYCLES + 1, init=1)
        at = lambda k: onehot[k]  # noqa: E731
        real1 = Signal(p.real_bits)
        real2 = Signal(p.real_bits)
        spill_real = Signal(p.real_bits)
        spill_any = Signal()
        spilling = Signal()     # the lookup's decision is a spill: three more steps (9-11)
        backup = Signal(32)
        m.d.sync += backup.eq(Array(list(self.group_backup))[cur.group])
        backup_real = backup[0:p.real_bits]
        which = Cat(slot(cur.idx1, cur.group)[1], cur_bank)
        picked1 = Signal(p.real_bits)
        picked2 = Signal(p.real_bits)
        m.d.comb += [picked1.eq(raw_a[which]), picked2.eq(raw_b[which])]
        # The MACs are read from the registered reals (step 5 on), and their data lands in
        # registers at step 7: the MAC RAMs may sit far from the output register, and from
        # the registers that address them.
        m.d.comb += [
            macs[0].r_addr.eq(real1),
            macs[1].r_addr.eq(real2),
            macs[2].r_addr.eq(Mux(spilling, spill_real, backup_real)),
        ]
        if p.stateful:
            m.d.comb += [macs[3].r_addr.eq(conn.real), macs[4].r_addr.eq(persist.real)]
        mac_regs = [Signal(48, name=f"mac{k}") for k in range(5)]
        with m.If(at(7)):
            m.d.sync += [reg.eq(ram.r_data) for reg, ram in zip(mac_regs, macs)]
        with m.If(at(10)):
            m.d.sync += mac_regs[2].eq(macs[2].r_data)      # a spill's real (read in step 8)

        # whether the output register is free (~o.valid | o.ready), kept as a register: it
        # enables the load of the whole decision and gates the tables' update, and one LUT of
        # the handshake in front of that fan-out was on the late paths of 7a345f8
        out_free = Signal(init=1)
        o_valid_next = Signal()
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.loaded.eq(0)
        vip_next = Signal()
        m.d.comb += vip_next.eq(self.i.valid & self.i.payload.lookup)
        idle = at(0)
        last = Signal()
        m.d.comb += last.eq((at(self.CYCLES_VIP) & ~spilling)
                            | at(self.CYCLES_VIP + self.SPILL_CYCLES))
        accept = Signal()
        steal = Signal()
        # (the tables' scrubbers use idle cycles in which no frame waits, and step 1 of each
        # lookup: they never need the accept to wait)
        m.d.comb += accept.eq(out_free & vip_next & (idle | last))
        m.d.comb += [conn.key_hash.eq(self.i.payload.ckey), persist.key_hash.eq(self.i.payload.pkey)]
        for table in (conn, persist):
            m.d.comb += [table.idle.eq(idle), table.busy_vip.eq(self.i.valid),
                         table.after_start.eq(at(1)), table.start.eq(accept)]
        # The addresses are always the waiting frame's slots, whether or not it is taken this
        # cycle: only the address of the cycle after the accept is used (a wasted read is
        # harmless), which keeps handshakes off the address path.
        # A new flow of a round-robin group reads its group's two pointer slots instead.
        # (whether it is one comes with the record: mark_new_flow)
        w_in = self.i.payload
        m.d.comb += rr.group.eq(w_in.group)
        with m.If(w_in.rr):
            m.d.comb += [next_a.eq(slot(rr.ptr, w_in.group)[0]),
                         next_b.eq(slot(rr.nxt, w_in.group)[0])]
        with m.Else():
            m.d.comb += [next_a.eq(slot(w_in.idx1, w_in.group)[0]),
                         next_b.eq(slot(w_in.idx2, w_in.group)[0])]

        # ---- management read-back of one slot through port B -----------------------------
        rd_req = Signal(32)
        rd_pending = Signal()
        rd_bank = Signal()
        rd_stage = Signal(4)
        # a read-back takes port B in an idle cycle in which no frame waits (so it never holds
        # a frame back, and the handshakes do not depend on it); the choice depends on
        # registers only
        m.d.comb += steal.eq(rd_pending & idle & ~rd_stage.any() & ~self.i.valid)
        with m.If(self.table_raddr_stb):
            m.d.sync += [rd_req.eq(self.w_data), rd_pending.eq(1), self.table_rdata.eq(0)]
        raddr = register_view("TABLE_RADDR", rd_req, p)
        rd_group = raddr.group
        rd_word, rd_slice = slot(raddr.index, rd_group)
        with m.If(steal):
            m.d.comb += next_b.eq(rd_word)
            # bank 1 = the active one, 0 = the shadow
            m.d.sync += [rd_bank.eq(raddr.bank ^ ~bank), rd_pending.eq(0)]
        m.d.sync += rd_stage.eq(Cat(steal, rd_stage[0:3]))
        with m.If(rd_stage[3] & ~self.table_raddr_stb):
            m.d.sync += self.table_rdata.eq(
                Cat(raw_b[Cat(rd_slice, rd_bank)], C(0, 31 - p.real_bits), 1))

        # the decision of a VIP lookup (step 8)
        # the connection's entry, then the client's binding, then the two candidates (Maglev
        # slots, or the metric's), then the backup
        cur_track = Signal()
        cur_bind = Signal()
        cur_ret = Signal()      # return traffic (RNAT): its NAT entry decides, nothing else
        cur_starts = Signal()   # a tracked frame that starts a flow (TCP SYN, UDP)
        cur_rr = Signal()       # ... of a round-robin group: its candidates are pointer slots
        cur_lc = Signal()       # ... of a leastconns group
        lc_second = Signal()    # the second candidate has fewer connections per weight
        m.d.comb += [conn.cur_hash.eq(cur.ckey), conn.cur_udp.eq(cur.proto == PROTO_UDP),
                     conn.cur_flags.eq(cur.tcp_flags), conn.cur_nat.eq(cur.nat | cur_ret),
                     conn.cur_return.eq(cur_ret), persist.cur_hash.eq(cur.pkey),
                     persist.cur_nat.eq(0), persist.cur_return.eq(0),
                     persist.cur_udp.eq(1), persist.cur_flags.eq(0)]
        # What each real can do for the frame, registered in step 6 from the health and full
        # bits (below), so that step 7 chooses from registers only: those bits, the tables'
        # hits and the frame's marks come from all over the die.  Each register looks at one
        # real's bits (two 16-way selects behind registers of their own); step 7 combines
        # them.  A new flow (the metric chooses, full reals are skipped) is a tracked frame
        # that starts a flow and that its connection's entry does not decide; wherever the
        # choice is free, the entry does not decide, so there a frame that starts a flow is a
        # new flow (``cur_starts``).
        use_conn = Signal()     # the connection's live entry decides: its real is up
        bind_ok = Signal()      # the client's live binding can decide: its real can take it
        ok1 = Signal()          # slot 1's real can take the frame: up, and not full for a new flow
        ok2 = Signal()
        ok_backup = Signal()
        ret_hit = Signal()      # return traffic with its NAT entry
        turned12 = Signal()     # slot 1's or 2's real is up and full (turns a new flow away)
        bind_full = Signal()    # the live binding's real is up and full (turns it away too)
        backup_full = Signal()  # the backup is up and full
        rr_both = Signal()      # a round-robin new flow tries both slots (slot 1's real can't)
        use_bind = ~use_conn & bind_ok      # the binding decides (the connection's entry first)
        turned_away = turned12 | bind_full  # a full real that is up turned a new flow away
        full_seen = turned_away | backup_full   # ... or the backup: a drop is a MAXCON one
        # every input of the choice is in a register by step 7: the choice itself is made
        # there, one-hot in priority order (the connection's entry, the client's binding, the
        # two candidates, a spill, the backup), so that step 8 only ANDs and ORs the registered
        # reals and MACs; leastconns' compare (of registered products) runs beside it and may
        # swap the first candidate for the second, as the last select.
        spill_now = Signal()    # a new flow that a full real turned away, and neither took
        free_choice = ~cur_ret & ~use_conn & ~use_bind   # (use_bind excludes use_conn)
        takes = {
            "conn": ~cur_ret & use_conn,
            "ret": cur_ret & ret_hit,
            "bind": ~cur_ret & use_bind,
            "first": free_choice & ok1,
            "second": free_choice & ~ok1 & ok2,
            "backup": free_choice & ~ok1 & ~ok2 & ~spill_now & ok_backup,
        }
        take = {name: Signal(name=f"take_{name}") for name in takes}
        to_a_real = ~cur_ret & (use_conn | use_bind | ok1 | ok2 | spill_now | ok_backup)
        lc_swap = Signal()      # leastconns may swap the first for the second
        maxcon_drop = Signal()  # no real can take it and a full one turned it away
        forwards = Signal()     # the decision forwards the frame to a real (tables learn)
        dropped = Signal()      # the decision drops the frame
        with m.If(at(7)):
            m.d.sync += [take[name].eq(value) for name, value in takes.items()]
            m.d.sync += [lc_swap.eq(free_choice & ok1 & cur_lc & ok2),
                         maxcon_drop.eq(cur_starts & full_seen),
                         forwards.eq(to_a_real),
                         dropped.eq(~(takes["ret"] | to_a_real))]
        # (a spill is the ``spilling`` register, set in step 7 too; its real's MAC is read
        # again in step 10 and the choice made in step 11)
        reals_by = [
            (take["conn"] | take["ret"], conn.real, None),
            (take["bind"], persist.real, mac_regs[4]),
            (take["first"], real1, mac_regs[0]),
            (take["second"], real2, mac_regs[1]),
            (spilling, spill_real, mac_regs[2]),
            (take["backup"], backup_real, mac_regs[2]),
            (dropped, cur.real, None),
        ]
        # (the connection's and the dropped frame's MACs are not in ``reals_by``: the
        # connection's MAC depends on whether the frame is return traffic)
        macs_by = [(take["conn"], mac_regs[3]), (take["ret"] | dropped, cur.real_mac)] + [
            (sel, mac) for sel, _, mac in reals_by if mac is not None]
        # leastconns' swap of the first candidate for the second is the last multiplexer, one
        # LUT between the compare and the registers that take the choice (the compare sits
        # by the multipliers, across the die from the rest of the selector): a swap is only
        # set when the first candidate is taken, so it replaces exactly that choice
        swap = Signal()
        m.d.comb += swap.eq(lc_swap & lc_second)
        chosen = Signal(meta_layout(p))
        m.d.comb += chosen.eq(cur)
        m.d.comb += [
            chosen.real.eq(Mux(swap, real2, one_of([(sel, real) for sel, real, _ in reals_by]))),
            chosen.real_mac.eq(one_of(macs_by)),
        ]
        for table, tracked in ((conn, cur_track), (persist, cur_bind)):
            m.d.comb += [table.forward.eq(forwards),
                         table.new_real.eq(chosen.real),
                         table.update.eq(last & out_free & tracked & ~cur_ret)]
        m.d.comb += [
            chosen.tracked.eq(cur_track),
            chosen.conn_hit.eq(cur_track & conn.hit),
            chosen.conn_new.eq(cur_track & conn.new),
            chosen.conn_evict.eq(cur_track & conn.evict),
            chosen.conn_full.eq(cur_track & conn.full),
            chosen.pbind_hit.eq(cur_bind & persist.hit),
            chosen.pbind_new.eq(cur_bind & persist.new),
            chosen.pbind_full.eq(cur_bind & persist.full),
        ]
        with m.If(take["ret"]):
            m.d.comb += chosen.vip.eq(conn.vip)
        with m.If(dropped):
            m.d.comb += [chosen.action.eq(Action.DROP), chosen.error.eq(1),
                         chosen.reason.eq(Mux(cur_ret, DropReason.NO_CONN,
                                              Mux(maxcon_drop, DropReason.MAXCON,
                                                  DropReason.NO_REAL)))]
        # The output register loads whenever it is free: a passing frame's record when idle,
        # the decision otherwise; only its valid bit depends on the handshakes.
        passing = Signal()
        m.d.comb += passing.eq(idle & ~vip_next)
        loads_decision = out_free & ((passing & self.i.valid) | last)
        m.d.comb += o_valid_next.eq(loads_decision | (self.o.valid & ~self.o.ready))
        m.d.sync += out_free.eq(~o_valid_next | self.o_ready_next)
        with m.If(out_free):
            m.d.sync += [self.o.payload.eq(Mux(idle, self.i.payload, chosen)),
                         self.o_mac_swap.eq(~idle & swap), self.o_mac_alt.eq(mac_regs[1])]
            with m.If(loads_decision):
                m.d.sync += [self.o.valid.eq(1), self.loaded.eq(1)]
            with m.If(passing):
                m.d.comb += self.i.ready.eq(1)
        # The lookup's record is loaded whenever a frame could be accepted, taken or not, so
        # its wide load enable does not wait for the handshake.
        with m.If(idle | (last & out_free)):
            w = self.i.payload
            ret = w.action == Action.RNAT
            vip = w.action == Action.VIP
            track = self.conn_enable & (ret | (vip & w.ports_known
                                               & ((w.proto == PROTO_TCP) | (w.proto == PROTO_UDP))))
            m.d.sync += [cur.eq(w), cur_bank.eq(bank), cur_track.eq(track), cur_ret.eq(ret),
                         cur_bind.eq(track & vip & w.pbind), cur_starts.eq(w.starts),
                         cur_rr.eq(w.rr), cur_lc.eq(w.lc)]
        with m.If(accept):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += [onehot.eq(0b10), spilling.eq(0)]
        with m.Elif(last & out_free):
            m.d.sync += onehot.eq(1)
        with m.Elif(~idle & ~last):
            m.d.sync += onehot.eq(onehot << 1)
        # step 3: slot data lands in raw_a/raw_b; step 4: pick; steps 5-6: health, full bits,
        # counts; 5-7: MACs
        with m.If(at(4)):
            m.d.sync += [real1.eq(picked1), real2.eq(picked2)]
        # the health and full bits of a real are looked up in two steps (a 16-bit slice, then
        # the bit): a 256-way multiplexer is too deep for one cycle
        health_words = [Signal(16, name=f"health_word{k}") for k in range(5)]
        full_words = [Signal(16, name=f"full_word{k}") for k in range(4)]
        reals = (real1, real2, backup_real, conn.real, persist.real)
        # (the count engine's full bits are a write behind: the write in flight is registered
        # beside the slice, for each real whether it names it, and applied with the bit)
        full_reals = (real1, real2, backup_real, persist.real)
        pend_hits = [Signal(name=f"pend_hit{k}") for k in range(4)]
        pend_full = Signal()
        with m.If(at(5)):
            m.d.sync += [w.eq(self.health.word_select(r[4:], 16))
                         for w, r in zip(health_words, reals)]
            m.d.sync += [w.eq(count.full.word_select(r[4:], 16))
                         for w, r in zip(full_words, full_reals)]
            m.d.sync += [hit.eq(count.pend & (count.pend_real == r))
                         for hit, r in zip(pend_hits, full_reals)]
            m.d.sync += pend_full.eq(count.pend_full)

        def bit(word, real):
            return word.bit_select(real[0:4], 1)
        up1, up2, up_backup, up_conn, up_bind = (
            bit(health_words[0], real1), bit(health_words[1], real2),
            backup[8] & bit(health_words[2], backup_real),
            bit(health_words[3], conn.real), bit(health_words[4], persist.real))
        full1, full2, full_backup, full_bind = (
            Mux(hit, pend_full, bit(word, r))
            for hit, word, r in zip(pend_hits, full_words, full_reals))
        new = cur_starts        # (where the choice is free: see above)
        bind_live = cur_bind & persist.hit & up_bind
        with m.If(at(6)):
            m.d.sync += [
                use_conn.eq(cur_track & conn.hit & up_conn),
                bind_ok.eq(bind_live & ~(new & full_bind)),
                ok1.eq(up1 & ~(new & full1)),
                ok2.eq(up2 & ~(new & full2)),
                ok_backup.eq(up_backup & ~(new & full_backup)),
                ret_hit.eq(cur_track & conn.hit),
                turned12.eq((up1 & full1) | (up2 & full2)),
                bind_full.eq(bind_live & full_bind),
                backup_full.eq(up_backup & full_backup),
                # (its own register, not ~ok1: the pointers' RAM is away from the choice)
                rr_both.eq(~up1 | full1),
            ]
        # leastconns: connections × the other's weight, cross-multiplied (steps 5-8): both are
        # read in step 5 (into the count engine's read registers), their banks picked into
        # registers in step 6, multiplied in step 7 (a multiplier block between two registers:
        # it sits in a row of its own, far from the logic around it), and compared in step 8
        conns_q = [Signal(p.conn_count_bits, name=f"conns{k}") for k in range(2)]
        weights_q = [Signal(WEIGHT_BITS, name=f"weight{k}") for k in range(2)]
        loads = [Signal(p.conn_count_bits + WEIGHT_BITS, name=f"load{k}") for k in range(2)]
        m.d.comb += [count.rd_real[0].eq(real1), count.rd_real[1].eq(real2)]
        with m.If(at(6)):
            m.d.sync += [reg.eq(value) for reg, value in zip(
                conns_q + weights_q, list(count.count) + list(count.weight))]
        with m.If(at(7)):
            m.d.sync += [loads[0].eq(conns_q[0] * weights_q[1]),
                         loads[1].eq(conns_q[1] * weights_q[0])]
        m.d.comb += lc_second.eq(loads[1] < loads[0])
        # round robin (step 7): the pointer moves on past the slots the new flow tried, in
        # time for a next frame accepted in step 8
        # (``cur_rr`` marks a frame that starts a flow: it is a new flow unless an entry decides)
        m.d.comb += [rr.advance.eq(at(7) & cur_rr & ~use_conn & ~use_bind),
                     rr.upd_group.eq(cur.group), rr.both.eq(rr_both)]

        # ---- spill-over: a new flow that a full real turned away, and that neither candidate
        # can take, goes to the group's lowest-numbered real that is up and has room -----------
        # membership masks (MEMBER_DATA): one distributed RAM per 32-bit word, (bank, group)
        words = member_words(p)
        member_vec = Signal(32 * words)
        for k in range(words):
            mem = memory.Memory(shape=unsigned(32), depth=2 * p.n_groups, init=[])
            m.submodules[f"members{k}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            member_sel = register_view("MEMBER_SEL", self.member_sel, p)
            m.d.comb += [wr.addr.eq(Cat(member_sel.group, ~bank)),
                         wr.data.eq(self.w_data),
                         wr.en.eq(self.member_data_stb & (member_sel.word == k)),
                         rd.addr.eq(Cat(cur.group, cur_bank))]
            with m.If(at(1)):
                m.d.sync += member_vec[32 * k:32 * k + 32].eq(rd.data)
        # step 5: the members that are up and below their limits, registered (the last
        # lookup's counts are in by then); 6: of each 16, whether any and the first, and
        # whether any at all; 7: the first of all (the spill's real is needed from step 8,
        # when its MAC is read)
        avail = Signal(p.n_reals)
        with m.If(at(5)):
            m.d.sync += avail.eq(member_vec[0:p.n_reals] & self.health & ~count.full_now)
        chunks = -(-p.n_reals // 16)
        chunk_any = Signal(chunks)
        chunk_first = [Signal(4, name=f"spill_first{c}") for c in range(chunks)]
        with m.If(at(6)):
            m.d.sync += spill_any.eq(avail.any())
            for c in range(chunks):
                bits = avail[16 * c:16 * c + 16]
                found, first = first_set([(bits[b], C(b, 4)) for b in range(len(bits))])
                m.d.sync += [chunk_any[c].eq(found), chunk_first[c].eq(first)]
        with m.If(at(7)):
            _, first = first_set([(chunk_any[c], Cat(chunk_first[c], C(c, 8))[0:p.real_bits])
                                   for c in range(chunks)])
            m.d.sync += spill_real.eq(first)
        # step 7: the decision to spill (as the choice in step 8 would make it)
        m.d.comb += spill_now.eq(cur_starts & ~use_conn & ~use_bind & ~ok1 & ~ok2 & ~cur_ret
                                 & turned_away & spill_any)
        with m.If(at(7)):
            m.d.sync += spilling.eq(spill_now)
        return m


def _block(m: Module, name: str, cls, p: Params):
    """Block ``cls`` as submodule ``name``; in the stateless profile only its ports, which
    nothing drives: they keep their reset values (0, no hit, no count), so every path that
    reads them folds away in synthesis."""
    if p.stateful:
        block = m.submodules[name] = cls(p)
        return block
    return cls.ports(p).create(path=(name,))


def mark_new_flow(m: Module, record, conn_enable, group_metric) -> None:
    """Fill in ``record``'s ``lookup``, ``starts``, ``rr`` and ``lc`` marks (:func:`meta_layout`)
    on its way into the lookup queue: a frame the selector looks up (action VIP or RNAT), a
    tracked VIP frame that starts a flow (a TCP SYN without ACK, or a UDP datagram), and whether
    its group's metric (``group_metric``, an array per group) is round robin or leastconns.

    The selector's accept then reads no configuration: deciding this from the waiting record
    put the group's metric multiplexer in front of the table address (the ECP5 core's longest
    path at 84.72 MHz).  CONN_CTRL and GROUP_METRIC are committed registers, which change only
    while no record is in flight, so a mark made ahead is the one the accept would make.

    The metrics are decoded per group into registers first (the registers change only at a
    COMMIT, so the copy's cycle of lag is never seen): the record's group then picks one bit,
    not a metric to be compared.
    """
    n = len(group_metric)
    is_rr, is_lc = Signal(n), Signal(n)
    m.d.sync += [is_rr.eq(Cat(*[metric == Metric.ROUNDROBIN for metric in group_metric])),
                 is_lc.eq(Cat(*[metric == Metric.LEASTCONNS for metric in group_metric]))]
    starts = Signal()
    m.d.comb += [
        starts.eq(conn_enable & (record.action == Action.VIP) & record.ports_known
                  & ((record.proto == PROTO_UDP)
                     | ((record.proto == PROTO_TCP) & opens_connection(record.tcp_flags)))),
        record.lookup.eq((record.action == Action.VIP) | (record.action == Action.RNAT)),
        record.starts.eq(starts),
        record.rr.eq(starts & is_rr.bit_select(record.group, 1)),
        record.lc.eq(starts & is_lc.bit_select(record.group, 1)),
    ]
