"""Counters: global per-outcome counters and per-VIP / per-real packet and byte counters.

Ports
-----
``ev_valid``, ``ev`` : In — one event per frame: the selector's decision as it is handed on.
``stat_ev_valid``    : In — ``ev`` is a newly made decision (per-VIP / per-real statistics
                       count these; they come at least 5 cycles apart).
``snapshot``         : In(1) strobe — copy all global counters into their snapshots at once.
``counter``          : Out(32) array — snapshot words (2n low, 2n+1 high) of counter n.
``stat_sel``         : In(1) strobe, with ``w_data`` — latch one VIP (bit 15 = 0) or real
                       (bit 15 = 1) entry into ``stat`` (valid two cycles after the strobe).
``stat``             : Out(32) array of 4 — packets lo/hi, bytes lo/hi.

All counters are 64 bits.  The global counters live in flip-flops; a read of the snapshot is
consistent across all of them.  The per-VIP and per-real counters live in block RAM
(``{bytes, packets}`` per entry), updated read-modify-write; a STAT_SEL latch is consistent for
one entry.  Events that update the RAM (forwarded frames, counted when the selector makes the
decision) come at most once every 5 cycles (its lookup rate), so a read-modify-write (3 cycles)
never overlaps the next one.

The counting rules are :meth:`openslb.model.pipeline.Appliance.decide`'s.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import Action, meta_layout
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
            "TX_SERVER": e.action == Action.VIP,
            "TX_CLIENT": e.action == Action.ARP,
            "TX_HOST": e.action == Action.HOST,
        }
        for r in DropReason:
            inc[f"DROP_{r.name}"] = (e.action == Action.DROP) & (e.reason == r)
        assert list(inc) == list(COUNTERS)
        return inc

    def elaborate(self, platform):
        m = Module()
        p = self.params

        # ---- global counters --------------------------------------------------------------
        live = {name: Signal(64, name=f"c_{name.lower()}") for name in COUNTERS}
        snap = {name: Signal(64, name=f"s_{name.lower()}") for name in COUNTERS}
        for name, amount in self._increments(m).items():
            with m.If(self.ev_valid):
                m.d.sync += live[name].eq(live[name] + amount)
            with m.If(self.snapshot):
                m.d.sync += snap[name].eq(live[name])
        for n, name in enumerate(COUNTERS):
            m.d.comb += [self.counter[2 * n].eq(snap[name][0:32]),
                         self.counter[2 * n + 1].eq(snap[name][32:64])]

        # ---- per-VIP and per-real counters in RAM --------------------------------------------
        forwarded = Signal()
        m.d.comb += forwarded.eq(self.stat_ev_valid & (self.ev.action == Action.VIP))
        stat_real = Signal()
        stat_latch = Signal()
        m.d.sync += stat_latch.eq(self.stat_sel)
        with m.If(self.stat_sel):
            m.d.sync += stat_real.eq(self.w_data[15])
        results = []
        for which, depth, index in (("vip", p.n_vips, self.ev.vip),
                                    ("real", p.n_reals, self.ev.real)):
            mem = memory.Memory(shape=128, depth=depth, init=[])
            m.submodules[f"{which}_stats"] = mem
            rmw_rd, wr, stat_rd = mem.read_port(), mem.write_port(), mem.read_port()
            # read (cycle 1), register the RAM output (cycle 2), add and write back (cycle 3)
            read_pending = Signal(name=f"{which}_read_pending")
            pending = Signal(name=f"{which}_pending")
            addr = Signal(range(depth), name=f"{which}_addr")
            amount = Signal(16, name=f"{which}_amount")
            entry = Signal(128, name=f"{which}_entry")
            m.d.sync += [read_pending.eq(forwarded), pending.eq(read_pending),
                         entry.eq(rmw_rd.data)]
            with m.If(forwarded):
                m.d.sync += [addr.eq(index), amount.eq(self.ev.length)]
            m.d.comb += [
                rmw_rd.addr.eq(index),
                wr.en.eq(pending),
                wr.addr.eq(addr),
                wr.data.eq(Cat((entry[0:64] + 1)[0:64], (entry[64:128] + amount)[0:64])),
                stat_rd.addr.eq(self.w_data[0:8]),
                stat_rd.en.eq(self.stat_sel),
            ]
            results.append(stat_rd.data)
        vip_entry, real_entry = results
        with m.If(stat_latch):
            chosen = Signal(128)
            m.d.comb += chosen.eq(vip_entry)
            with m.If(stat_real):
                m.d.comb += chosen.eq(real_entry)
            m.d.sync += [self.stat[k].eq(chosen[32 * k:32 * k + 32]) for k in range(4)]
        return m
