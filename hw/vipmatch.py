"""VIP matcher: the VIP table compare, a fixed-latency pipeline that runs beside the parser's
last stages (like the hasher), so the classifier can decide in the parser's output stage.

Ports
-----
``en``       : In(1) — advance: every stage takes its input when high (the parser's enable).
``load``     : In(1) — the user's register of the fields below loads them (stage 0).
``dst``, ``proto``, ``dport``, ``ports_known`` : In — the frame's IPv4 destination, protocol,
               destination port and whether it carries ports (fragments and ICMP do not), as
               they go into the user's register (taken under ``load``).
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

Stage 0 registers the fields here as the user's register takes them (that register also feeds
the hasher, whose Toeplitz terms load every bit 32 times: a private copy keeps the compares'
inputs local); stage 1 compares each field against every entry (whose IP and service it keeps
in registers of its own) and registers the compares in parts (the IP's halves, the protocol,
the port); stage 2 ANDs the parts and registers the lowest match, one-hot; stage 3 registers
what it says (its index, group, client persistence, NAT mode and VIP_RPORT), an AND-OR of the
entries' settings, so the user (the parser, which completes its record with them in its output
stage) starts from registers.  (A tree of pairs that found the lowest match and picked its
settings at once, in stage 3, was seven LUTs with three nets of 25 loads: 9.42 ns at 862b882,
seed 1, and 10.20 at seed 2.)  The rules are the model's
:meth:`~openslb.model.pipeline.Appliance.match_vip`.

Latency 3 enabled cycles behind the user's register (stage 0 is loaded with it), one frame per
cycle.
"""

from __future__ import annotations

from amaranth import C, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import register_view
from openslb.hw.picks import first_set, one_of
from openslb.hw.spec import Mode, Params

__all__ = ["VipMatcher"]


class VipMatcher(wiring.Component):
    LATENCY = 3  #: enabled cycles from the inputs to the outputs

    def __init__(self, params: Params) -> None:
        self.params = params
        n = params.n_vips
        super().__init__({
            "en": In(1),
            "load": In(1),
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

        # ---- stage 0: a private copy of the fields, loaded with the user's own register -----
        # (initialised to ones: the user's register of these fields takes the same inputs
        # under the same enable, and synthesis merges flip-flops that match in inputs and
        # initial value, which would give the compares the user's register and its fan-out
        # back; what a copy holds before the first frame is never used)
        dst, proto, dport, ports_known, arp_tpa = (
            Signal.like(sig, name=f"in_{sig.name}", init=(1 << len(sig)) - 1)
            for sig in (self.dst, self.proto, self.dport, self.ports_known, self.arp_tpa))
        with m.If(self.load):
            m.d.sync += [dst.eq(self.dst), proto.eq(self.proto), dport.eq(self.dport),
                         ports_known.eq(self.ports_known), arp_tpa.eq(self.arp_tpa)]

        # ---- stage 1: compare the fields against every entry ----------------------------------
        # (against a copy of each entry's IP and service in registers here: the register bank's
        # sit across the die, and the entries change only at a COMMIT, when no frame is in the
        # pipeline)
        key = data.StructLayout({"ip": 32, "enable": 1, "any_port": 1, "port": 16, "proto": 8})
        keys = [Signal(key, name=f"key{k}") for k in range(n)]
        for k, e in enumerate(keys):
            svc = register_view("VIP_SERVICE", self.vip_service[k])
            m.d.sync += [e.ip.eq(self.vip_ip[k]), e.enable.eq(svc.enable),
                         e.any_port.eq(svc.any_port), e.port.eq(svc.port), e.proto.eq(svc.proto)]
        # Each compare is registered in parts of at most 18 bits (the IP's halves, the
        # protocol, the port test), ANDed in stage 2 in front of the lowest-match pick: one
        # compare of all 57 bits and its AND were seven LUTs from the copy (9.83 ns at
        # 7a345f8, seed 1).
        parts = ("ip_hi", "ip_lo", "proto", "port", "arp_hi", "arp_lo")
        eq = {name: Signal(n, name=f"{name}_eq") for name in parts}
        for k, e in enumerate(keys):
            m.d.comb += [
                eq["ip_hi"][k].eq(e.enable & (e.ip[16:] == dst[16:])),
                eq["ip_lo"][k].eq(e.ip[:16] == dst[:16]),
                eq["proto"][k].eq(e.proto == proto),
                eq["port"][k].eq(e.any_port | ~ports_known | (e.port == dport)),
                eq["arp_hi"][k].eq(e.enable & (e.ip[16:] == arp_tpa[16:])),
                eq["arp_lo"][k].eq(e.ip[:16] == arp_tpa[:16]),
            ]
        q = {name: Signal(n, name=f"q_{name}") for name in parts}
        arp_own = Signal()
        with m.If(self.en):
            m.d.sync += [q[name].eq(eq[name]) for name in parts]
            m.d.sync += arp_own.eq(arp_tpa == self.own_ip)
        match = Signal(n, name="match")
        match_arp_vip = Signal(n, name="match_arp_vip")
        m.d.comb += [match.eq(q["ip_hi"] & q["ip_lo"] & q["proto"] & q["port"]),
                     match_arp_vip.eq(q["arp_hi"] & q["arp_lo"])]

        # ---- stage 2: the lowest-numbered match, one-hot ------------------------------------
        first = Signal(n, name="first")     # bit k: entry k matches and no lower one does
        hit2, arp_ours2 = Signal(), Signal()
        any_match, lowest = first_set([(match[k], C(1 << k, n)) for k in range(n)])
        with m.If(self.en):
            m.d.sync += [first.eq(Mux(any_match, lowest, 0)), hit2.eq(any_match),
                         arp_ours2.eq(arp_own | match_arp_vip.any())]

        # ---- stage 3: what the lowest-numbered match says, in registers ---------------------
        # Per entry, what the outputs need of its configuration (the entries change only at a
        # COMMIT, when no frame is in the pipeline), flags already compared.
        entry = data.StructLayout({"vip": p.vip_bits, "group": p.group_bits, "pbind": 1,
                                   "pbind_port": 1, "nat": 1, "rport": 16, "has_rport": 1})
        entries = [Signal(entry, name=f"entry{k}") for k in range(n)]
        for k, e in enumerate(entries):
            pbind = register_view("VIP_PBIND", self.vip_pbind[k])
            rport = register_view("VIP_RPORT", self.vip_rport[k]).rport
            group = register_view("VIP_GROUP", self.vip_group[k], p).group
            mode = register_view("VIP_SERVICE", self.vip_service[k]).mode
            m.d.sync += [e.vip.eq(k), e.group.eq(group),
                         e.pbind.eq(pbind.enable), e.pbind_port.eq(pbind.per_port),
                         e.nat.eq(mode == Mode.NAT),
                         e.rport.eq(rport), e.has_rport.eq(rport != 0)]
        chosen = Signal(entry)
        with m.If(self.en):
            m.d.sync += [self.hit.eq(hit2), self.arp_ours.eq(arp_ours2),
                         chosen.eq(one_of([(first[k], entries[k].as_value())
                                           for k in range(n)]))]
        m.d.comb += [self.vip.eq(chosen.vip), self.group.eq(chosen.group),
                     self.pbind.eq(chosen.pbind), self.pbind_port.eq(chosen.pbind_port),
                     self.nat.eq(chosen.nat), self.rport.eq(chosen.rport),
                     self.has_rport.eq(chosen.has_rport)]
        return m

