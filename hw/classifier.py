"""Classifier: VIP table match, ARP-for-us detection and the miss rule.

Ports
-----
``i``          : In(stream of meta) — parsed frames.
``o``          : Out(stream of meta) — ``action``, ``vip`` and ``group`` filled in.
``vip_ip``, ``vip_service``, ``vip_group`` : In(32) arrays — the VIP table registers.
``own_ip``     : In(32) — the appliance's address (answered to ARP).
``miss_to_host``: In(1) — the rule for traffic that is not ours: 1 = pass to host, 0 = drop.

Rules (the model's :meth:`Appliance.match_vip` and :meth:`Appliance.decide`): a frame with a
parse error is dropped with its reason; an ARP request for the appliance's IP or an enabled VIP
is answered; an IPv4 frame matching an enabled entry (IP, protocol, and port unless the entry
takes any port or the frame carries no ports: fragments, ICMP) goes to the lowest-numbered
matching entry; everything else follows the miss rule.

Latency 2 cycles (compare, then priority encode), one frame per cycle.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import Action, meta_layout
from openslb.hw.spec import DropReason, Params

__all__ = ["Classifier"]


class Classifier(wiring.Component):
    LATENCY = 2  #: cycles from input to output register

    def __init__(self, params: Params) -> None:
        self.params = params
        n = params.n_vips
        super().__init__({
            "i": In(stream.Signature(meta_layout(params))),
            "o": Out(stream.Signature(meta_layout(params))),
            "vip_ip": In(32).array(n),
            "vip_service": In(32).array(n),
            "vip_group": In(32).array(n),
            "own_ip": In(32),
            "miss_to_host": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n = p.n_vips
        meta = self.i.payload

        # ---- stage 1: compare against every entry ------------------------------------------
        s1 = Signal(meta_layout(p))
        s1_valid = Signal()
        s1_match = Signal(n)
        s1_arp_hit = Signal()

        match = Signal(n)
        arp_vip = Signal(n)
        for k in range(n):
            svc = self.vip_service[k]
            enable, any_port = svc[24], svc[25]
            port, proto = svc[0:16], svc[16:24]
            m.d.comb += [
                match[k].eq(enable & (self.vip_ip[k] == meta.dst) & (proto == meta.proto)
                            & (any_port | ~meta.ports_known | (port == meta.dport))),
                arp_vip[k].eq(enable & (self.vip_ip[k] == meta.arp_tpa)),
            ]
        # lowest-numbered match as a one-hot vector (so stage 2 is AND-OR, not a wide mux)
        first = Signal(n)
        for k in range(n):
            m.d.comb += first[k].eq(match[k] & ~(match[:k].any() if k else 0))
        arp_hit = Signal()
        m.d.comb += arp_hit.eq(meta.is_arp & meta.arp_request
                               & ((meta.arp_tpa == self.own_ip) | arp_vip.any()))

        s2_free = Signal()
        s1_free = Signal()
        m.d.comb += [
            s2_free.eq(~self.o.valid | self.o.ready),
            s1_free.eq(~s1_valid | s2_free),
            self.i.ready.eq(s1_free),
        ]
        with m.If(s1_free):
            m.d.sync += [s1_valid.eq(self.i.valid), s1.eq(meta),
                         s1_match.eq(first), s1_arp_hit.eq(arp_hit)]

        # ---- stage 2: lowest matching entry, action -----------------------------------------
        out = Signal(meta_layout(p))
        vip = Signal(p.vip_bits)
        group = Signal(p.group_bits)
        m.d.comb += [
            vip.eq(reduce(or_, [Mux(s1_match[k], k, 0) for k in range(n)])),
            group.eq(reduce(or_, [Mux(s1_match[k], self.vip_group[k][0:p.group_bits], 0)
                                  for k in range(n)])),
            out.eq(s1), out.vip.eq(vip), out.group.eq(group),
        ]
        with m.If(s1.error):
            m.d.comb += out.action.eq(Action.DROP)
        with m.Elif(s1_arp_hit):
            m.d.comb += out.action.eq(Action.ARP)
        with m.Elif(s1.is_ipv4 & s1_match.any()):
            m.d.comb += out.action.eq(Action.VIP)
        with m.Elif(self.miss_to_host):
            m.d.comb += out.action.eq(Action.HOST)
        with m.Else():
            m.d.comb += [out.action.eq(Action.DROP), out.error.eq(1),
                         out.reason.eq(DropReason.NON_VIP)]
        with m.If(s2_free):
            m.d.sync += [self.o.valid.eq(s1_valid), self.o.payload.eq(out)]
        return m
