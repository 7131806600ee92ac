"""Classifier: the action of each frame, from the parser's verdict and the VIP matcher's result
(:class:`~openslb.hw.vipmatch.VipMatcher`, which runs beside the parser).

Ports
-----
``i``          : In(meta) — a parsed frame's record, with ``vip_hit``, ``vip``, ``group`` and
                 ``arp_ours`` from the VIP matcher.
``o``          : Out(meta) — the same record with ``action`` (and, for a miss that is dropped,
                 ``error`` and ``reason``) filled in.
``miss_to_host``: In(1) — the rule for traffic that is not ours: 1 = pass to host, 0 = drop.

Rules (the model's :meth:`Appliance.match_vip` and :meth:`Appliance.decide`): a frame with a
parse error is dropped with its reason; an ARP request for the appliance's IP or an enabled VIP
is answered (on the port it came from); an unfragmented TCP/UDP frame from the server side is a
candidate for reverse NAT (the selector looks its connection up); a client-side IPv4 frame
matching an enabled entry (IP, protocol, and port unless the entry takes any port or the frame
carries no ports: fragments, ICMP) goes to the lowest-numbered matching entry, unless it is a
fragment for a NAT service (dropped: NAT_FRAGMENT); everything else follows the miss rule.

Combinational (two LUT levels from the record's flags): the parser registers its result in its
output register, beside the hasher's, so classifying adds no cycle.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import Action, meta_layout
from openslb.hw.spec import DropReason, Params

__all__ = ["Classifier"]


class Classifier(wiring.Component):
    LATENCY = 0  #: combinational

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(meta_layout(params)),
            "o": Out(meta_layout(params)),
            "miss_to_host": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        meta, out = self.i, self.o
        m.d.comb += out.eq(meta)
        with m.If(meta.error):
            m.d.comb += out.action.eq(Action.DROP)
        with m.Elif(meta.is_arp & meta.arp_request & meta.arp_ours):
            m.d.comb += out.action.eq(Action.ARP)
        with m.Elif(meta.in_port & meta.is_ipv4 & meta.ports_known):
            # (ports are known for unfragmented TCP and UDP only)
            m.d.comb += out.action.eq(Action.RNAT)
        with m.Elif(~meta.in_port & meta.is_ipv4 & meta.vip_hit):
            with m.If(meta.nat & meta.fragment):
                m.d.comb += [out.action.eq(Action.DROP), out.error.eq(1),
                             out.reason.eq(DropReason.NAT_FRAGMENT)]
            with m.Else():
                m.d.comb += out.action.eq(Action.VIP)
        with m.Elif(self.miss_to_host):
            m.d.comb += out.action.eq(Action.HOST)
        with m.Else():
            m.d.comb += [out.action.eq(Action.DROP), out.error.eq(1),
                         out.reason.eq(DropReason.NON_VIP)]
        return m
