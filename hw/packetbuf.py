"""Packet buffer: a FIFO of stored beats in block RAM whose output never comes straight from the
RAM.

Ports
-----
``i`` : In(stream of :func:`~openslb.hw.layouts.stored_beat_layout`) — beats from the capture
        stage.
``o`` : Out(stream of stored beats) — the oldest beat, from a small queue in distributed RAM.

Write path: a beat taken on ``i`` is registered, then written to the RAM.  Read path: a read is
issued whenever the RAM holds a beat and the output queue will have room for it when it lands
(:class:`~openslb.hw.bram.BlockRam`, two cycles), so the rewriter reads registers and
distributed RAM only.  ``depth`` beats fit in the RAM; the output queue adds ``SKID`` more.

Latency 4 cycles (write register, RAM write, two read cycles) from ``i`` to ``o``; one beat per
cycle in and out.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.layouts import stored_beat_layout
from openslb.hw.spec import Params

__all__ = ["PacketBuffer", "ring_next"]


class PacketBuffer(wiring.Component):
    SKID = 4  #: output queue depth: the two beats a read has in flight, and two to spare

    def __init__(self, params: Params, depth: int | None = None) -> None:
        self.params = params
        self.depth = depth or params.buffer_beats
        layout = stored_beat_layout(params)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        layout = stored_beat_layout(self.params)
        depth = self.depth
        m.submodules.ram = ram = BlockRam(layout.size, depth)
        m.submodules.out = out = fifo.SyncFIFO(width=layout.size, depth=self.SKID)

        # ---- write: register, then RAM ----------------------------------------------------
        w_valid = Signal()
        w_word = Signal(layout.size)
        w_ptr = Signal(range(depth))
        held = Signal(range(depth + 2))   # beats taken and not yet read out of the RAM
        take = Signal()
        issue = Signal()
        # one place is kept for the beat in the write register
        m.d.comb += [self.i.ready.eq(held < depth), take.eq(self.i.valid & self.i.ready)]
        m.d.sync += [w_valid.eq(take), w_word.eq(self.i.payload.as_value())]
        m.d.comb += [ram.w_en.eq(w_valid), ram.w_addr.eq(w_ptr), ram.w_data.eq(w_word)]
        with m.If(w_valid):
            m.d.sync += w_ptr.eq(ring_next(w_ptr, depth))
        m.d.sync += held.eq(held + take - issue)

        # ---- read: issue when a written beat is there and the queue will have room -----------
        written = Signal(range(depth + 1))  # beats in the RAM, written and not yet read
        r_ptr = Signal(range(depth))
        in_flight = Signal(BlockRam.LATENCY)
        m.d.sync += in_flight.eq(in_flight << 1 | issue)
        room = Signal()
        m.d.comb += [
            room.eq(out.level + in_flight[0] + in_flight[1] < self.SKID),
            issue.eq((written != 0) & room),
            ram.r_addr.eq(r_ptr),
        ]
        m.d.sync += written.eq(written + w_valid - issue)
        with m.If(issue):
            m.d.sync += r_ptr.eq(ring_next(r_ptr, depth))
        m.d.comb += [
            out.w_en.eq(in_flight[-1]),
            out.w_data.eq(ram.r_data),
            self.o.valid.eq(out.r_rdy),
            self.o.payload.eq(data.View(layout, out.r_data)),
            out.r_en.eq(self.o.ready),
        ]
        return m


def ring_next(ptr: Value, depth: int) -> Value:
    """The pointer after ``ptr`` in a ring of ``depth`` places (to be assigned to a signal of
    ``ptr``'s width: a power-of-two ring wraps by truncation)."""
    if depth & (depth - 1) == 0:
        return ptr + 1       # wraps by itself
    return Mux(ptr == depth - 1, 0, ptr + 1)
