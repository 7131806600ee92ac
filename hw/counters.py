"""Counters: global per-outcome counters and per-VIP / per-real packet and byte counters.

Ports
-----
``ev_valid``, ``ev`` : In — one event per frame: the selector's decision as it is handed on.
``stat_ev_valid``    : In — ``ev`` is a newly made decision (per-VIP / per-real statistics
                       count these; they come at least 8 cycles apart).
``snapshot``         : In(1) strobe — take a snapshot of every global counter at the same moment.
``counter_index``    : In — a snapshot word (2n low, 2n+1 high half of counter n) …
``counter``          : Out(32) — … and its value (combinational: a LUT RAM read), valid from
                       :data:`~openslb.hw.spec.SNAPSHOT_CYCLES` cycles after the strobe.
``stat_sel``         : In(1) strobe, with ``w_data`` — latch one VIP (bit 15 = 0) or real
                       (bit 15 = 1) entry into ``stat`` (valid at most
                       :data:`~openslb.hw.spec.STAT_LATCH_CYCLES` cycles after the strobe).
``stat``             : Out(32) array of 4 — packets lo/hi, bytes lo/hi.

All counters are 64 bits.  The global counters are kept in two parts: a small accumulator per
counter in flip-flops (an event's amount is registered first, then added there), and the
64-bit totals in a LUT RAM.  One shared 64-bit adder moves one accumulator a cycle into its
total, round robin, so an accumulator only needs room for ``len(COUNTERS) + 2`` events (7 bits,
22 for the byte count).  This replaces a 64-bit adder and 128 flip-flops per counter (a live
value and its snapshot) by a few.  A total is its RAM word plus its accumulator.

Snapshot: the strobe copies every accumulator's next value at once (the moment of the
snapshot, the same for all); in the ``len(COUNTERS)`` cycles after it, as the round robin
reaches each counter, its RAM word (which then holds every move made before the snapshot,
and none after) plus the copied accumulator is written into a second LUT RAM, which the
COUNTER words read.  So a read after ``SNAPSHOT_CYCLES`` is consistent across all counters.
After a reset, the first round clears both RAMs.

The per-VIP and per-real counters live in block RAM
(:class:`~openslb.hw.bram.BlockRam`, ``{bytes, packets}`` per entry), updated
read-modify-write; a STAT_SEL latch is consistent for one entry.  Events that update the RAM
(forwarded frames, counted when the selector makes the decision) come at most once every 8
cycles (its lookup rate), so a read-modify-write (5 cycles) never overlaps the next one.

The counting rules are :meth:`openslb.model.pipeline.Appliance.decide`'s.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.layouts import Action, meta_layout, register_view
from openslb.hw.picks import one_of
from openslb.hw.spec import COUNTERS, DropReason, Params

__all__ = ["Counters"]


class Counters(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "ev_valid": In(1),
            "ev": In(meta_layout(params)),
            "stat_ev_valid": In(1),
            "snapshot": In(1),
            "counter_index": In(range(2 * len(COUNTERS))),
            "counter": Out(32),
            "stat_sel": In(1),
            "w_data": In(32),
            "stat": Out(32).array(4),
        })

    def _increments(self, m: Module) -> dict[str, object]:
        """What each global counter adds for the current event."""
        e = self.ev
        # headers valid: no parse error (NON_VIP / NO_REAL are decisions, not parse errors)
        ok = ~e.error | (e.reason >= DropReason.NON_VIP)
        inc = {
            "RX_FRAMES": 1,
            "RX_BYTES": e.length,
            "RX_ARP": e.is_arp,
            "RX_IPV4": e.is_ipv4,
            "RX_IPV6": e.is_ipv6,
            "RX_OTHER": e.is_other,
            "RX_FRAGMENTS": e.is_ipv4 & e.fragment & ok,
            "TX_SERVER": (e.action == Action.VIP) | ((e.action == Action.ARP) & e.in_port),
            "TX_CLIENT": ((e.action == Action.ARP) & ~e.in_port) | (e.action == Action.RNAT),
            "TX_HOST": e.action == Action.HOST,
            "RX_SERVER": e.in_port,
            "TX_RNAT": e.action == Action.RNAT,
        }
        for r in DropReason:
            inc[f"DROP_{r.name}"] = (e.action == Action.DROP) & (e.reason == r)
        inc.update({
            "CONN_HIT": e.conn_hit,
            "CONN_MISS": e.tracked & ~e.conn_hit,
            "CONN_NEW": e.conn_new,
            "CONN_EVICT": e.conn_evict,
            "CONN_FULL": e.conn_full,
            "PBIND_HIT": e.pbind_hit,
            "PBIND_NEW": e.pbind_new,
            "PBIND_FULL": e.pbind_full,
        })
        assert list(inc) == list(COUNTERS)
        return inc

    def _global_counters(self, m: Module) -> None:
        n = len(COUNTERS)
        room = (n + 2).bit_length()      # an accumulator holds n + 2 events' amounts
        pending, acc, nxt = [], [], []
        for name, amount in self._increments(m).items():
            # each event's amount is registered first, so the decode of the selector's record
            # (which comes across the die) and the sum are in different cycles
            width = len(Value.cast(amount))
            add = Signal(width, name=f"add_{name.lower()}")
            m.d.sync += add.eq(Mux(self.ev_valid, amount, 0))
            pending.append(add)
            acc.append(Signal(width + room, name=f"acc_{name.lower()}"))
            nxt.append(Signal(width + room, name=f"next_{name.lower()}"))
        # the round robin: the counter whose accumulator moves into its total this cycle
        # (also one-hot: the picks below AND-OR the accumulators by it, a few LUT levels,
        # where a binary index meant a decoder in front of a 40-way multiplexer)
        turn = Signal(range(n))
        turn_hot = Signal(n, init=1)
        m.d.sync += [turn.eq(Mux(turn == n - 1, 0, turn + 1)),
                     turn_hot.eq(turn_hot.rotate_left(1))]
        # (an accumulator starts again from this cycle's amount when its turn comes: the value
        # it had is taken into step 1)
        for k in range(n):
            m.d.comb += nxt[k].eq(Mux(turn_hot[k], pending[k], acc[k] + pending[k]))
            m.d.sync += acc[k].eq(nxt[k])
        # the snapshot: the accumulators' next values, then a round of RAM words (the round
        # starts with the move taken in the cycle after the strobe)
        snap_acc = [Signal(len(a), name=f"snap_{name.lower()}") for a, name in zip(acc, COUNTERS)]
        with m.If(self.snapshot):
            m.d.sync += [s.eq(v) for s, v in zip(snap_acc, nxt)]
        totals = memory.Memory(shape=unsigned(64), depth=n, init=[])
        snaps = memory.Memory(shape=unsigned(64), depth=n, init=[])
        m.submodules.totals, m.submodules.snaps = totals, snaps
        total = totals.read_port(domain="comb")
        update = totals.write_port()
        snap_wr = snaps.write_port()
        snap_rd = snaps.read_port(domain="comb")
        # step 1: the turn's accumulator, its snapshot copy and its total into registers (the
        # total written in step 2 is another counter's: the turn has moved on)
        moved = Signal(max(len(a) for a in acc))
        moved_snap = Signal(len(moved))
        moved_total = Signal(64)
        moved_k = Signal(range(n))
        m.d.comb += total.addr.eq(turn)
        m.d.sync += [moved.eq(one_of(list(zip(turn_hot, acc)))),
                     moved_snap.eq(one_of(list(zip(turn_hot, snap_acc)))),
                     moved_total.eq(total.data), moved_k.eq(turn)]
        # step 2: the new total, and in a snapshot round the snapshot's; the first round after
        # a reset takes the totals as 0 and clears the snapshots
        sweep = Signal(range(n + 2))        # the round is on while 1 <= sweep <= n
        clear = Signal(range(n + 2), init=n + 1)
        for countdown in (sweep, clear):
            with m.If(countdown != 0):
                m.d.sync += countdown.eq(countdown - 1)
        with m.If(self.snapshot):
            m.d.sync += sweep.eq(n + 1)
        # clearing: 1 <= clear <= n; sweeping: 1 <= sweep <= n.  Both are registered, from
        # the countdowns' values a cycle before (a strobe reloads the sweep with n + 1), so
        # that their compares are not in front of the 64-bit sums.
        clearing = Signal()
        sweeping = Signal()
        m.d.sync += [clearing.eq((clear >= 2) & (clear <= n + 1)),
                     sweeping.eq(~self.snapshot & (sweep >= 2) & (sweep <= n + 1))]
        base = Signal(64)
        m.d.comb += [
            base.eq(Mux(clearing, 0, moved_total)),
            update.addr.eq(moved_k), update.en.eq(1), update.data.eq(base + moved),
            snap_wr.addr.eq(moved_k),
            snap_wr.en.eq(clearing | sweeping),
            snap_wr.data.eq(Mux(sweeping, base + moved_snap, 0)),
            snap_rd.addr.eq(self.counter_index[1:]),
            self.counter.eq(Mux(self.counter_index[0], snap_rd.data[32:64],
                                snap_rd.data[0:32])),
        ]

    def elaborate(self, platform):
        m = Module()
        p = self.params

        self._global_counters(m)

        # ---- per-VIP and per-real counters in RAM --------------------------------------------
        # One read port per RAM serves both the read-modify-write of an event and a STAT_SEL
        # read; the event wins a cycle they both want, the STAT_SEL read waits for the next.
        forwarded = Signal()
        m.d.comb += forwarded.eq(self.stat_ev_valid & (self.ev.action == Action.VIP))
        stat_real = Signal()
        stat_index = Signal(8)
        stat_pending = Signal()
        stat_issue = Signal()
        stat_stage = Signal(BlockRam.LATENCY)
        m.d.comb += stat_issue.eq(stat_pending & ~forwarded)
        m.d.sync += stat_stage.eq(Cat(stat_issue, stat_stage))
        with m.If(self.stat_sel):
            stat_sel = register_view("STAT_SEL", self.w_data)
            m.d.sync += [stat_real.eq(stat_sel.real), stat_index.eq(stat_sel.index),
                         stat_pending.eq(1)]
        with m.Elif(stat_issue):
            m.d.sync += stat_pending.eq(0)
        # event: read (cycle 0), RAM output register (cycle 2), add (cycle 3), write (cycle 4)
        rmw = Signal(BlockRam.LATENCY + 2)
        m.d.sync += rmw.eq(Cat(forwarded, rmw))
        amount = Signal(16)
        with m.If(forwarded):
            m.d.sync += amount.eq(self.ev.length)
        results = []
        for which, depth, index in (("vip", p.n_vips, self.ev.vip),
                                    ("real", p.n_reals, self.ev.real)):
            ram = BlockRam(128, depth)
            m.submodules[f"{which}_stats"] = ram
            addr = Signal(range(depth), name=f"{which}_addr")
            entry = Signal(128, name=f"{which}_entry")
            updated = Signal(128, name=f"{which}_updated")
            with m.If(forwarded):
                m.d.sync += addr.eq(index)
            m.d.sync += [entry.eq(ram.r_data),
                         updated.eq(Cat((entry[0:64] + 1)[0:64], (entry[64:128] + amount)[0:64]))]
            m.d.comb += [
                ram.r_addr.eq(Mux(forwarded, index, stat_index)),
                ram.w_en.eq(rmw[BlockRam.LATENCY + 1]),
                ram.w_addr.eq(addr),
                ram.w_data.eq(updated),
            ]
            results.append(ram.r_data)
        vip_entry, real_entry = results
        with m.If(stat_stage[-1]):
            chosen = Mux(stat_real, real_entry, vip_entry)
            m.d.sync += [self.stat[k].eq(chosen[32 * k:32 * k + 32]) for k in range(4)]
        return m
