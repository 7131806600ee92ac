"""VIP matcher: the VIP table compare, a fixed-latency pipeline that runs beside the parser's
last stages (like the hasher), so the classifier can decide in the parser's output stage.

Ports
-----
``en``       : In(1) — advance: every stage takes its input when high (the parser's enable).
``dst``, ``proto``, ``dport``, ``ports_known`` : In — the frame's IPv4 destination, protocol,
               destination port and whether it carries ports (fragments and ICMP do not).
``arp_tpa``  : In(32) — the target address of an ARP request (whatever the frame is).
``vip_ip``, ``vip_service``, ``vip_group``, ``vip_pbind``, ``vip_rport`` : In(32) arrays — the VIP table
               registers.
``own_ip``   : In(32) — the appliance's address.
``hit``      : Out(1) — an enabled entry matches (IP, protocol, and port unless the entry takes
               any port or the frame carries no ports).
``vip``, ``group`` : Out — the lowest-numbered matching entry and its group (0 without a hit).
``pbind``, ``pbind_port`` : Out — that entry's client persistence: on, and per service port.
``nat``, ``rport``, ``has_rport`` : Out — that entry is a NAT service (VIP_SERVICE.mode), its
               VIP_RPORT, and whether that is set (not 0).
``arp_ours`` : Out(1) — ``arp_tpa`` is the appliance's IP or an enabled VIP.

Stage 1 registers the fields here (the user's registers also feed the hasher, whose Toeplitz
terms load every bit 32 times: a private copy keeps the compares' inputs local); stage 2
compares each field against every entry; stage 3 combines them and keeps the lowest match as a
one-hot vector; the outputs encode it combinationally (an AND-OR, not a wide multiplexer), for
the user to register (the parser, with its record), like the hasher's.  The rules are the
model's :meth:`~openslb.model.pipeline.Appliance.match_vip`.

Latency 3 enabled cycles, one frame per cycle.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.spec import Mode, Params

__all__ = ["VipMatcher"]


class VipMatcher(wiring.Component):
    LATENCY = 3  #: enabled cycles from the inputs to the outputs

    def __init__(self, params: Params) -> None:
        self.params = params
        n = params.n_vips
        super().__init__({
            "en": In(1),
            "dst": In(32),
            "proto": In(8),
            "dport": In(16),
            "ports_known": In(1),
            "arp_tpa": In(32),
            "vip_ip": In(32).array(n),
            "vip_service": In(32).array(n),
            "vip_group": In(32).array(n),
            "vip_pbind": In(32).array(n),
            "vip_rport": In(32).array(n),
            "own_ip": In(32),
            "hit": Out(1),
            "vip": Out(params.vip_bits),
            "group": Out(params.group_bits),
            "arp_ours": Out(1),
            "pbind": Out(1),
            "pbind_port": Out(1),
            "nat": Out(1),
            "rport": Out(16),
            "has_rport": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        n = p.n_vips

        # ---- stage 1: a private copy of the fields -------------------------------------------
        dst, proto, dport, ports_known, arp_tpa = (
            Signal.like(sig, name=f"in_{sig.name}")
            for sig in (self.dst, self.proto, self.dport, self.ports_known, self.arp_tpa))
        with m.If(self.en):
            m.d.sync += [dst.eq(self.dst), proto.eq(self.proto), dport.eq(self.dport),
                         ports_known.eq(self.ports_known), arp_tpa.eq(self.arp_tpa)]

        # ---- stage 2: compare each field against every entry --------------------------------
        ip_eq, proto_eq, port_ok, arp_vip = (Signal(n, name=nm) for nm in
                                             ("ip_eq", "proto_eq", "port_ok", "arp_vip"))
        for k in range(n):
            svc = self.vip_service[k]
            enable, any_port = svc[24], svc[25]
            port, svc_proto = svc[0:16], svc[16:24]
            m.d.comb += [
                ip_eq[k].eq(enable & (self.vip_ip[k] == dst)),
                proto_eq[k].eq(svc_proto == proto),
                port_ok[k].eq(any_port | ~ports_known | (port == dport)),
                arp_vip[k].eq(enable & (self.vip_ip[k] == arp_tpa)),
            ]
        s2_ip, s2_proto, s2_port, s2_arp_vip = (Signal(n, name=f"s2_{sig.name}")
                                                for sig in (ip_eq, proto_eq, port_ok, arp_vip))
        s2_arp_own = Signal()
        with m.If(self.en):
            m.d.sync += [s2_ip.eq(ip_eq), s2_proto.eq(proto_eq), s2_port.eq(port_ok),
                         s2_arp_vip.eq(arp_vip), s2_arp_own.eq(arp_tpa == self.own_ip)]
        s2_match = Signal(n)
        m.d.comb += s2_match.eq(s2_ip & s2_proto & s2_port)

        # ---- stage 3: the lowest match as a one-hot vector ------------------------------------
        first = Signal(n)
        for k in range(n):
            m.d.comb += first[k].eq(s2_match[k] & ~(s2_match[:k].any() if k else 0))
        s3_first = Signal(n)
        with m.If(self.en):
            m.d.sync += [s3_first.eq(first),
                         self.arp_ours.eq(s2_arp_own | s2_arp_vip.any())]

        # per entry, what the output needs of its configuration, in registers (the entries
        # change only at a COMMIT, when no frame is in the pipeline): no compare follows the
        # match in the output's AND-OR
        entry_nat = Signal(n)
        entry_rport = Signal(n)
        m.d.sync += [entry_nat[k].eq(self.vip_service[k][26:28] == Mode.NAT) for k in range(n)]
        m.d.sync += [entry_rport[k].eq(self.vip_rport[k][0:16] != 0) for k in range(n)]

        # ---- output: encode the one-hot vector (AND-OR; the user registers it) ---------------
        m.d.comb += [
            self.hit.eq(s3_first.any()),
            self.vip.eq(reduce(or_, [Mux(s3_first[k], k, 0) for k in range(n)])),
            self.group.eq(reduce(or_, [Mux(s3_first[k], self.vip_group[k][0:p.group_bits], 0)
                                       for k in range(n)])),
        ]
        pbind = reduce(or_, [Mux(s3_first[k], self.vip_pbind[k][0:2], 0) for k in range(n)])
        m.d.comb += [self.pbind.eq(pbind[0]), self.pbind_port.eq(pbind[1])]
        m.d.comb += [
            self.nat.eq((s3_first & entry_nat).any()),
            self.rport.eq(reduce(or_, [Mux(s3_first[k], self.vip_rport[k][0:16], 0)
                                       for k in range(n)])),
            self.has_rport.eq((s3_first & entry_rport).any()),
        ]
        return m
