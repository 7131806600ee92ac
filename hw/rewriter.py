"""Rewriter: joins each decision with its buffered frame, rewrites headers, forwards or drops.

Ports
-----
``dec``     : In(stream of :func:`~openslb.hw.layouts.decision_layout`) — one decision per
              frame, in frame order.
``buf``     : In(stream of stored beats) — the packet buffer.
``o``       : Out(stream of :func:`~openslb.hw.layouts.egress_beat_layout`).
``own_mac`` : In(48) — the appliance MAC (byte 0 in bits 47:40).

Rewrites (first :data:`~openslb.hw.spec.REWRITE_BYTES` bytes of the frame, as an overlay):
- DSR (action VIP): destination MAC = the real's MAC, source MAC = appliance MAC; the IP packet is
  untouched.  Leaves on the SERVER port.
- ARP reply (action ARP): Ethernet addresses swapped to the requester, opcode 2, sender = the
  appliance MAC + the asked-for IP, target = the requester; VLAN tag kept.  CLIENT port.
- HOST: unchanged, HOST port.  DROP: the buffered beats are read and discarded at one beat per
  cycle.

Latency 0 cycles (the output is combinational from the two FIFO heads), one beat per cycle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import Action, decision_layout, egress_beat_layout, stored_beat_layout
from openslb.hw.spec import ETH_HEADER, REWRITE_BYTES, VLAN_TAG, EgressPort, Params

__all__ = ["Rewriter"]


def _bytes_be(value, n: int) -> list:
    """The ``n`` bytes of ``value``, most significant first (network order)."""
    return [value[8 * (n - 1 - k):8 * (n - k)] for k in range(n)]


class Rewriter(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "dec": In(stream.Signature(decision_layout(params))),
            "buf": In(stream.Signature(stored_beat_layout(params))),
            "o": Out(stream.Signature(egress_beat_layout(params))),
            "own_mac": In(48),
        })

    def _overlay(self, m: Module, d) -> tuple[list, Signal]:
        """Overlay bytes and their enables for decision ``d``."""
        over = [Signal(8, name=f"ov{b}") for b in range(REWRITE_BYTES)]
        en = Signal(REWRITE_BYTES)
        own = _bytes_be(self.own_mac, 6)

        def put(offset: int, values: list):
            for k, v in enumerate(values):
                m.d.comb += [over[offset + k].eq(v), en[offset + k].eq(1)]

        with m.Switch(d.action):
            with m.Case(Action.VIP):
                put(0, _bytes_be(d.real_mac, 6))
                put(6, own)
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
        over_beats = REWRITE_BYTES // lanes
        # The end of the frame comes from the beat count the capture stage recorded (the buffer
        # stores no `last` bit), so buffer data never steers the queues' handshakes.
        count = Signal(16)       # beat of the frame (also places the overlay)
        at_end = Signal()
        m.d.comb += at_end.eq(count == d.beats_m1)

        over, en = self._overlay(m, d)
        lanes_out = []
        for j in range(lanes):
            byte = beat.data[8 * j:8 * j + 8]
            for k in range(over_beats):
                b = k * lanes + j
                byte = Mux((count == k) & en[b], over[b], byte)
            lanes_out.append(byte)

        forward = Signal()
        m.d.comb += forward.eq(d.action != Action.DROP)
        port = Signal(2)
        with m.Switch(d.action):
            with m.Case(Action.VIP):
                m.d.comb += port.eq(EgressPort.SERVER)
            with m.Case(Action.ARP):
                m.d.comb += port.eq(EgressPort.CLIENT)
            with m.Default():
                m.d.comb += port.eq(EgressPort.HOST)

        both = Signal()
        m.d.comb += both.eq(self.dec.valid & self.buf.valid)
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
