"""Ingress merge: the client-side and the server-side frame streams into the core's one input,
a whole frame at a time, each tagged with the port it came from.

Ports
-----
``client``, ``server`` : In(stream of :func:`~openslb.hw.layouts.beat_layout`) — the two ports'
                         received frames.
``o``                  : Out(stream of :func:`~openslb.hw.layouts.beat_layout`) — frames to the
                         core, never interleaved.
``o_port``             : Out(1) — the :class:`~openslb.hw.spec.IngressPort` of the frame on
                         ``o`` (the core's ``i_port``), steady for the whole frame.

Between frames a waiting port is taken at once; when both wait they alternate (round robin),
so neither side can starve the other.  Inside a frame the merge stays on its port until the
``last`` beat, whatever the other side offers.

Latency 0 cycles (combinational), one beat per cycle; the two ports share the core's one beat
per cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import beat_layout
from openslb.hw.spec import Params

__all__ = ["IngressMerge"]


class IngressMerge(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "client": In(stream.Signature(beat_layout(params))),
            "server": In(stream.Signature(beat_layout(params))),
            "o": Out(stream.Signature(beat_layout(params))),
            "o_port": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        in_frame = Signal()      # a frame is passing (its first beat has gone)
        current = Signal()       # ... from this port
        turn = Signal()          # the port that goes first when both wait between frames
        pick = Signal()
        both = self.client.valid & self.server.valid
        m.d.comb += pick.eq(Mux(in_frame, current, Mux(both, turn, self.server.valid)))
        m.d.comb += [
            self.o_port.eq(pick),
            self.o.payload.eq(Mux(pick, self.server.payload, self.client.payload)),
            self.o.valid.eq(Mux(pick, self.server.valid, self.client.valid)),
            self.client.ready.eq(self.o.ready & ~pick),
            self.server.ready.eq(self.o.ready & pick),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(self.o.payload.last):
                m.d.sync += [in_frame.eq(0), turn.eq(~pick)]
            with m.Else():
                m.d.sync += [in_frame.eq(1), current.eq(pick)]
        return m
