"""Counters: global per-outcome counters and per-VIP / per-real packet and byte counters.

Ports
-----
``ev_valid``, ``ev`` : In — one event per frame: the selector's decision as it is handed on.
``stat_ev_valid``    : In — ``ev`` is a newly made decision (per-VIP / per-real statistics
                       count these; they come at least 8 cycles apart).
``snapshot``         : In(1) strobe — copy all global counters into their snapshots at once.
``counter``          : Out(32) array — snapshot words (2n low, 2n+1 high) of counter n.
``stat_sel``         : In(1) strobe, with ``w_data`` — latch one VIP (bit 15 = 0) or real
                       (bit 15 = 1) entry into ``stat`` (valid at most
                       :data:`~openslb.hw.spec.STAT_LATCH_CYCLES` cycles after the strobe).
``stat``             : Out(32) array of 4 — packets lo/hi, bytes lo/hi.

All counters are 64 bits.  The global counters live in flip-flops and count an event one cycle
after it (its amounts are registered first); a read of the snapshot is consistent across all
of them.  The per-VIP and per-real counters live in block RAM
(:class:`~openslb.hw.bram.BlockRam`, ``{bytes, packets}`` per entry), updated
read-modify-write; a STAT_SEL latch is consistent for one entry.  Events that update the RAM
(forwarded frames, counted when the selector makes the decision) come at most once every 8
cycles (its lookup rate), so a read-modify-write (5 cycles) never overlaps the next one.

The counting rules are :meth:`openslb.model.pipeline.Appliance.decide`'s.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.layouts import Action, meta_layout, register_view
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
            "counter": Out(32).array(2 * len(COUNTERS)),
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

    def elaborate(self, platform):
        m = Module()
        p = self.params

        # ---- global counters --------------------------------------------------------------
        live = {name: Signal(64, name=f"c_{name.lower()}") for name in COUNTERS}
        snap = {name: Signal(64, name=f"s_{name.lower()}") for name in COUNTERS}
        for name, amount in self._increments(m).items():
            # each event's amount is registered first, so the decode of the selector's record
            # (which comes across the die) and the 64-bit sum are in different cycles
            pending = Signal(len(Value.cast(amount)), name=f"add_{name.lower()}")
            m.d.sync += [pending.eq(Mux(self.ev_valid, amount, 0)),
                         live[name].eq(live[name] + pending)]
            with m.If(self.snapshot):
                m.d.sync += snap[name].eq(live[name])
        for n, name in enumerate(COUNTERS):
            m.d.comb += [self.counter[2 * n].eq(snap[name][0:32]),
                         self.counter[2 * n + 1].eq(snap[name][32:64])]

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
