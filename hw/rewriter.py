"""Rewriter: joins each decision with its buffered frame, rewrites headers, forwards or drops.

Ports
-----
``dec``     : In(stream of :func:`~openslb.hw.layouts.decision_layout`) — one decision per
              frame, in frame order.
``buf``     : In(stream of stored beats) — the packet buffer.
``o``       : Out(stream of :func:`~openslb.hw.layouts.egress_beat_layout`).
``own_mac`` : In(48) — the appliance MAC (byte 0 in bits 47:40).
``gw_mac``  : In(48) — CLIENT_GW_MAC: where reverse-NAT frames go.
``vip_ip``, ``vip_service`` : In(32) arrays — the VIP table (a return frame's new source).
``real_ip_stb``, ``real_sel``, ``w_data`` : REAL_IP writes the IPv4 address of real
              ``real_sel`` into the rewriter's real-IP RAM.

Rewrites (the first :data:`~openslb.hw.spec.HEADER_WINDOW` bytes of the frame, as an overlay):
- DSR (action VIP): destination MAC = the real's MAC, source MAC = appliance MAC; the IP packet is
  untouched.  Leaves on the SERVER port.
- NAT (action VIP of a NAT service): as DSR, and the destination address becomes the real's
  IP, the destination port the service's rport, with the IPv4 and TCP/UDP checksums updated
  (RFC 1624: the parser's half ``~HC + ~m``, the new words added here,
  :func:`~openslb.hw.spec.nat_checksum`).  A UDP checksum of 0 stays 0; the port and the L4
  checksum are rewritten only in frames that carry the L4 header.
- Reverse NAT (action RNAT): destination MAC = CLIENT_GW_MAC, source MAC = appliance MAC, the
  source address and port become the VIP entry's (an any-port entry keeps the port), checksums
  as for NAT.  Leaves on the CLIENT port.
- ARP reply (action ARP): Ethernet addresses swapped to the requester, opcode 2, sender = the
  appliance MAC + the asked-for IP, target = the requester; VLAN tag kept.  Leaves on the port
  the request came from.
- Stateless profile (``Params.stateful`` false): neither NAT rewrite is built (a VIP frame is
  rewritten as DSR; the selector never hands on RNAT there).
- HOST: unchanged, HOST port.  DROP: the buffered beats are read and discarded at one beat per
  cycle.

NAT values: when a decision reaches the head of the queue the real's IP is read (2 cycles),
the decision is registered (cycle 1) and the VIP entry picked (cycle 2), the new words are
added to the parser's halves (cycle 2; the L4 sum's four operands in two halves, added in
cycle 3) and folded (cycle 3; the L4 checksum 4).  A beat
at or after the IPv4 checksum's (byte 24) waits for cycle 3, one at or after the first byte an
L4 checksum can have (byte 40) for cycle 4: no wait at 8 to 64 bits (beat k is the k-th cycle
of a frame at the earliest: the IPv4 checksum is in beat 3, an L4 checksum in beat 5 or later),
2 cycles a NAT frame at 128 bits.

Latency 0 cycles (the output is combinational from the two FIFO heads), one beat per cycle.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.layouts import (Action, decision_layout, egress_beat_layout, register_view,
                                stored_beat_layout)
from openslb.hw.spec import ETH_HEADER, HEADER_WINDOW, VLAN_TAG, EgressPort, Params

__all__ = ["Rewriter"]

#: Cycles from a decision reaching the head to its new address, port and IPv4 checksum (real IP
#: read, sum, fold) ...
IP_READY = 3
#: ... and to its L4 checksum (the sum of four words takes two cycles).
NAT_READY = 4
#: First byte a NAT rewrite changes beyond the MACs: the IPv4 checksum of an untagged frame.
NAT_FIRST_BYTE = ETH_HEADER + 10
#: First byte of an L4 checksum: a UDP one, untagged, IHL 5.
NAT_L4_FIRST_BYTE = ETH_HEADER + 20 + 6
#: Where the L4 header of ``l4_word`` 0 starts (untagged, IHL 5).
L4_BASE = ETH_HEADER + 20


def _bytes_be(value, n: int) -> list:
    """The ``n`` bytes of ``value``, most significant first (network order)."""
    return [value[8 * (n - 1 - k):8 * (n - k)] for k in range(n)]


def _fold(m: Module, total, name: str) -> Signal:
    """``total`` folded to 16 bits with end-around carries (twice: enough below 2**19)."""
    once = Signal(17, name=f"{name}_fold1")
    twice = Signal(16, name=f"{name}_fold2")
    m.d.comb += [once.eq(total[0:16] + total[16:]), twice.eq(once[0:16] + once[16])]
    return twice


class Rewriter(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "dec": In(stream.Signature(decision_layout(params))),
            "buf": In(stream.Signature(stored_beat_layout(params))),
            "o": Out(stream.Signature(egress_beat_layout(params))),
            "own_mac": In(48),
            "gw_mac": In(48),
            "vip_ip": In(32).array(params.n_vips),
            "vip_service": In(32).array(params.n_vips),
            "real_ip_stb": In(1),
            "real_sel": In(32),
            "w_data": In(32),
        })

    def _nat_values(self, m: Module, d) -> tuple:
        """The head decision's new address, port and checksums, and whether the first three and
        the L4 checksum are ready."""
        p = self.params
        m.submodules.real_ips = rips = BlockRam(32, p.n_reals)
        m.d.sync += [rips.w_en.eq(self.real_ip_stb), rips.w_addr.eq(self.real_sel),
                     rips.w_data.eq(self.w_data)]
        m.d.comb += rips.r_addr.eq(d.real)
        age = Signal(range(NAT_READY + 1))
        with m.If(~self.dec.valid | self.dec.ready):
            m.d.sync += age.eq(0)
        with m.Elif(age != NAT_READY):
            m.d.sync += age.eq(age + 1)
        # cycle 1: the head decision's fields in registers (the decision queue's output
        # multiplexer, whose select fans out over the whole decision, had been in front of the
        # sums and of the VIP entry's pick)
        head = Signal.like(d, name="head_q")
        m.d.sync += head.eq(d)
        # (a return frame's mark, decoded here: the multiplexers in front of the sums below
        # select by a flip-flop, not by a decode of the action behind one)
        reverse = Signal()
        m.d.sync += reverse.eq(d.action == Action.RNAT)
        # cycle 1 → 2: the VIP entry (a return frame's new source), picked from a copy of the
        # entries' IPs and ports in registers here: the register bank's sit across the die, and
        # picking from them set the core's fmax (89.09 MHz at 76a06ba).  The entries change only
        # at a COMMIT, when no frame is in the pipeline, so the copy's cycle of lag is never seen.
        entry = data.StructLayout({"ip": 32, "port": 16, "any_port": 1})
        entries = [Signal(entry, name=f"vip_entry{k}") for k in range(p.n_vips)]
        for k, e in enumerate(entries):
            svc = register_view("VIP_SERVICE", self.vip_service[k])
            m.d.sync += [e.ip.eq(self.vip_ip[k]), e.port.eq(svc.port),
                         e.any_port.eq(svc.any_port)]
        vip = Signal(entry)
        m.d.sync += vip.eq(Array(entries)[head.vip])
        # cycle 2: the real's IP is read; the new words are added to the parser's halves (the
        # L4 sum in two halves, added in cycle 3: four operands after a RAM read were the
        # core's longest path)
        new_ip = Signal(32)
        new_port = Signal(16)
        ip_sum = Signal(19)
        l4_half_a = Signal(19)
        l4_half_b = Signal(17)
        l4_sum = Signal(19)
        ip_now = Mux(reverse, vip.ip, rips.r_data)
        port_now = Mux(reverse & ~vip.any_port, vip.port, head.new_port)
        m.d.sync += [new_ip.eq(ip_now), new_port.eq(port_now),
                     ip_sum.eq(head.ip_part + ip_now[16:32] + ip_now[0:16]),
                     l4_half_a.eq(head.l4_part + port_now),
                     l4_half_b.eq(ip_now[16:32] + ip_now[0:16]),
                     l4_sum.eq(l4_half_a + l4_half_b)]
        # cycle 3 (the L4 checksum: 4): folded and inverted (a UDP result of 0 is sent as 0xFFFF)
        ip_csum = Signal(16)
        l4_csum = Signal(16)
        l4_value = Signal(16)
        m.d.comb += [ip_csum.eq(~_fold(m, ip_sum, "ip")),
                     l4_value.eq(~_fold(m, l4_sum, "l4")),
                     l4_csum.eq(Mux(d.udp & (l4_value == 0), 0xFFFF, l4_value))]
        return new_ip, new_port, ip_csum, l4_csum, age >= IP_READY, age == NAT_READY

    def _overlay(self, m: Module, d, nat: tuple) -> tuple[list, Signal]:
        """Overlay bytes and their enables for decision ``d``."""
        new_ip, new_port, ip_csum, l4_csum, _, _ = nat
        over = [Signal(8, name=f"ov{b}") for b in range(HEADER_WINDOW)]
        en = Signal(HEADER_WINDOW)
        own = _bytes_be(self.own_mac, 6)

        def put(offset: int, values: list):
            for k, v in enumerate(values):
                if offset + k < HEADER_WINDOW:
                    m.d.comb += [over[offset + k].eq(v), en[offset + k].eq(1)]

        def put_nat(reverse: bool):
            for vlan in (0, 1):
                l3 = ETH_HEADER + VLAN_TAG * vlan
                with m.If(d.vlan == vlan):
                    put(l3 + 10, _bytes_be(ip_csum, 2))
                    put(l3 + (12 if reverse else 16), _bytes_be(new_ip, 4))
            with m.If(d.ports_known):
                for word in range(12):
                    l4 = L4_BASE + 4 * word
                    with m.If(d.l4_word == word):
                        put(l4 + (0 if reverse else 2), _bytes_be(new_port, 2))
                        with m.If(d.l4_fix):
                            with m.If(d.udp):
                                put(l4 + 6, _bytes_be(l4_csum, 2))
                            with m.Else():
                                put(l4 + 16, _bytes_be(l4_csum, 2))

        # (the stateless profile has no NAT: without the connection table its return traffic
        # could not be found, so neither rewrite is built)
        stateful = self.params.stateful
        with m.Switch(d.action):
            with m.Case(Action.VIP):
                put(0, _bytes_be(d.real_mac, 6))
                put(6, own)
                if stateful:
                    with m.If(d.nat):
                        put_nat(reverse=False)
            if stateful:
                with m.Case(Action.RNAT):
                    put(0, _bytes_be(self.gw_mac, 6))
                    put(6, own)
                    put_nat(reverse=True)
            with m.Case(Action.ARP):
                put(0, _bytes_be(d.eth_src, 6))
                put(6, own)
                for vlan in (0, 1):
                    l3 = ETH_HEADER + VLAN_TAG * vlan
                    with m.If(d.vlan == vlan):
                        put(l3 + 6, [Const(0, 8), Const(2, 8)])
                        put(l3 + 8, own)
                        put(l3 + 14, _bytes_be(d.arp_tpa, 4))
                        put(l3 + 18, _bytes_be(d.arp_sha, 6))
                        put(l3 + 24, _bytes_be(d.arp_spa, 4))
        return over, en

    def elaborate(self, platform):
        m = Module()
        p = self.params
        lanes = p.lanes
        d = self.dec.payload
        beat = self.buf.payload
        over_beats = HEADER_WINDOW // lanes
        # The end of the frame comes from the beat count the capture stage recorded (the buffer
        # stores no `last` bit), so buffer data never steers the queues' handshakes.
        count = Signal(16)       # beat of the frame (also places the overlay)
        at_end = Signal()
        m.d.comb += at_end.eq(count == d.beats_m1)

        nat = self._nat_values(m, d)
        ip_ready, l4_ready = nat[4], nat[5]
        over, en = self._overlay(m, d, nat)
        in_window = Signal()
        m.d.comb += in_window.eq(count < over_beats)
        index = count[0:max(1, (over_beats - 1).bit_length())]
        lanes_out = []
        for j in range(lanes):
            byte = beat.data[8 * j:8 * j + 8]
            lane_over = Array([over[k * lanes + j] for k in range(over_beats)])[index]
            lane_en = Array([en[k * lanes + j] for k in range(over_beats)])[index]
            lanes_out.append(Mux(in_window & lane_en, lane_over, byte))

        rewrites_nat = Signal()
        if p.stateful:
            m.d.comb += rewrites_nat.eq(((d.action == Action.VIP) & d.nat)
                                        | (d.action == Action.RNAT))
        # a beat with NAT bytes waits for the NAT values (never at 64 bits and below: beat k
        # leaves k cycles after the decision reached the head at the earliest; at 128 bits the
        # IPv4 checksum's wait already puts the L4 checksum's beat at cycle 4)
        waits = []
        if NAT_FIRST_BYTE // lanes < IP_READY:
            waits.append(~ip_ready & (count >= NAT_FIRST_BYTE // lanes))
        if NAT_L4_FIRST_BYTE // lanes < NAT_READY:
            waits.append(~l4_ready & (count >= NAT_L4_FIRST_BYTE // lanes))
        hold = Signal()
        if waits:
            m.d.comb += hold.eq(rewrites_nat & Cat(*waits).any())

        forward = Signal()
        m.d.comb += forward.eq(d.action != Action.DROP)
        port = Signal(2)
        with m.Switch(d.action):
            with m.Case(Action.VIP):
                m.d.comb += port.eq(EgressPort.SERVER)
            with m.Case(Action.RNAT):
                m.d.comb += port.eq(EgressPort.CLIENT)
            with m.Case(Action.ARP):
                m.d.comb += port.eq(Mux(d.in_port, EgressPort.SERVER, EgressPort.CLIENT))
            with m.Default():
                m.d.comb += port.eq(EgressPort.HOST)

        both = Signal()
        m.d.comb += both.eq(self.dec.valid & self.buf.valid & ~hold)
        m.d.comb += [
            self.o.valid.eq(both & forward),
            self.o.payload.data.eq(Cat(*lanes_out)),
            self.o.payload.keep.eq(beat.keep),
            self.o.payload.first.eq(count == 0),
            self.o.payload.last.eq(at_end),
            self.o.payload.port.eq(port),
        ]
        step = Signal()
        m.d.comb += [
            step.eq(both & (~forward | self.o.ready)),
            self.buf.ready.eq(step),
            self.dec.ready.eq(step & at_end),
        ]
        with m.If(step):
            m.d.sync += count.eq(Mux(at_end, 0, count + 1))
        return m
