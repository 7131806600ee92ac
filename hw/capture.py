"""Ingress capture: stores each frame in the packet buffer and snapshots its header window.

Ports
-----
``i``   : In(stream of :func:`~openslb.hw.layouts.beat_layout`) — frames from the MAC.
``buf`` : Out(stream of :func:`~openslb.hw.layouts.stored_beat_layout`) — beats to the buffer.
``o``   : Out(stream of :func:`~openslb.hw.layouts.capture_layout`) — one record per frame
          (its header window, length, beat count and whether it carries a VLAN tag).
``room``: In(1) — the header pipeline behind ``o`` can take another record (credit from the
          core; 1 when unused).  Without it the last beat of a frame waits.
``i_port``: In(1) — the :class:`~openslb.hw.spec.IngressPort` of the frame on ``i`` (held by
          the source for the whole frame; the record takes it with the last beat).

Frame boundaries come from ``last`` (``first`` is not trusted); the record carries the number of
beats stored, which is how the rewriter finds the end of the frame in the buffer.  Bytes whose
``keep`` bit is 0 are stored and captured as zero.  Only the last beat of a frame may be partial
(the stream rule), so the oversize cut counts beats: a frame longer than ``max_frame`` keeps its
first ``max_frame / lanes`` beats and later beats are consumed but not stored, so an oversized
(or endless) frame can never fill the buffer; the record says ``oversize``.

Latency: the record is valid the cycle after the last beat.  Throughput: one beat per cycle;
the last beat waits only if the previous record has not been taken.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import (IHL_WORDS, L3_AT, beat_layout, capture_layout, l4_sel_bit,
                                stored_beat_layout)
from openslb.hw import spec
from openslb.hw.spec import HEADER_WINDOW, LENGTH_SATURATE, Params

__all__ = ["Capture"]


class Capture(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(beat_layout(params))),
            "buf": Out(stream.Signature(stored_beat_layout(params))),
            "o": Out(stream.Signature(capture_layout())),
            "room": In(1, init=1),
            "i_port": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        lanes = p.lanes
        window_beats = (HEADER_WINDOW + lanes - 1) // lanes

        in_frame = Signal()       # a beat of the current frame has been taken
        beat = Signal(range(window_beats + 1))
        length = Signal(16)
        cut = Signal()            # storage stopped: the frame is oversized
        window = Signal(data.ArrayLayout(8, HEADER_WINDOW))

        beat_in = self.i.payload
        lane_bytes = [Mux(beat_in.keep[j], beat_in.data[8 * j:8 * j + 8], 0) for j in range(lanes)]
        lane_count = Signal(range(lanes + 1))
        m.d.comb += lane_count.eq(sum(beat_in.keep[j] for j in range(lanes)))

        new_length = Signal(17)
        m.d.comb += new_length.eq(length + lane_count)
        sat_length = Signal(16)
        m.d.comb += sat_length.eq(Mux(new_length[16], LENGTH_SATURATE, new_length[0:16]))
        # The cut is counted in beats, not bytes (a registered flag, off the adder's path):
        # only the last beat of a frame may be partial, so beat max_frame/lanes of a longer
        # frame is exactly where its byte count reaches max_frame.
        max_beats = p.max_frame // lanes
        stored_beats = Signal(range(max_beats + 1))
        reaches_max = Signal()     # the beat being offered is beat number max_beats
        m.d.comb += reaches_max.eq(stored_beats == max_beats - 1)

        record_free = Signal()
        m.d.comb += record_free.eq((~self.o.valid | self.o.ready) & self.room)
        store = Signal()
        m.d.comb += store.eq(~cut)

        # valid never looks at ready (stream rule); ready may look at valid.
        m.d.comb += [
            self.buf.valid.eq(self.i.valid & store & (~beat_in.last | record_free)),
            self.buf.payload.data.eq(Cat(*lane_bytes)),
            self.buf.payload.keep.eq(beat_in.keep),
            self.i.ready.eq((~store | self.buf.ready) & (~beat_in.last | record_free)),
        ]
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)

        # The window as it is after this beat (this beat's lanes merged in, older bytes cleared
        # on the first beat of a frame).
        next_window = Signal(data.ArrayLayout(8, HEADER_WINDOW))
        for b in range(HEADER_WINDOW):
            k, j = divmod(b, lanes)
            with m.If(beat == k):
                m.d.comb += next_window[b].eq(lane_bytes[j])
            with m.Elif(~in_frame):
                m.d.comb += next_window[b].eq(0)
            with m.Else():
                m.d.comb += next_window[b].eq(window[b])

        # Where the L4 header is, one-hot by the VLAN tag and the IPv4 header length, so that
        # the parser's picks of the L4 bytes are AND-OR trees of registers (a decode and a
        # wide net to every pick sat in front of them: its stage 1 set fmax at 6263294).
        # Each test of a window byte is made on the lane the byte arrives in and kept in a
        # register of its own beside the window's, so the record's one-hot is an AND of
        # two-way selects, not a compare behind the window's multiplexers.
        def byte_test(b: int, test, of_zero: bool, name: str) -> Signal:
            """``test`` of window byte ``b`` as it is after this beat (``of_zero``: the test of
            a cleared byte)."""
            k, j = divmod(b, lanes)
            held = Signal(name=f"{name}_held", init=of_zero)   # the test of window[b]
            now = Signal(name=name)
            m.d.comb += now.eq(Mux(beat == k, test(lane_bytes[j]), Mux(in_frame, held, of_zero)))
            with m.If(self.i.valid):
                m.d.sync += held.eq(now)
            return now

        vlan_hi = byte_test(12, lambda v: v == spec.ETHERTYPE_VLAN >> 8, False, "vlan_hi")
        vlan_lo = byte_test(13, lambda v: v == spec.ETHERTYPE_VLAN & 0xFF, True, "vlan_lo")
        next_vlan = Signal()
        m.d.comb += next_vlan.eq(vlan_hi & vlan_lo)
        l4_sel = Signal(2 * len(IHL_WORDS))
        for vlan, l3_at in enumerate(L3_AT):
            for words in IHL_WORDS:
                ihl_is = byte_test(l3_at, lambda v, w=words: v[0:4] == w, False,
                                   f"ihl{words}_at{l3_at}")
                m.d.comb += l4_sel[l4_sel_bit(vlan, words)].eq(
                    (next_vlan if vlan else ~next_vlan) & ihl_is)

        # The window and the record are loaded whenever a beat is offered (and, for the
        # record, its register is free), not only when it is taken: a beat that waits is
        # offered again unchanged and loads the same values, and the record's valid bit is set
        # by the take alone.  So the hundreds of flip-flops' enable does not wait for the
        # packet buffer's ready.
        with m.If(self.i.valid):
            m.d.sync += window.eq(next_window)
        with m.If(self.i.valid & beat_in.last & record_free):
            m.d.sync += [
                self.o.payload.window.eq(next_window),
                self.o.payload.length.eq(sat_length),
                self.o.payload.oversize.eq(cut),
                self.o.payload.beats_m1.eq(Mux(cut, max_beats - 1, stored_beats)),
                self.o.payload.vlan.eq(next_vlan),
                self.o.payload.l4_sel.eq(l4_sel),
                self.o.payload.in_port.eq(self.i_port),
            ]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            with m.If(beat_in.last):
                m.d.sync += [
                    self.o.valid.eq(1),
                    in_frame.eq(0), beat.eq(0), length.eq(0), cut.eq(0), stored_beats.eq(0),
                ]
            with m.Else():
                m.d.sync += [
                    in_frame.eq(1),
                    length.eq(sat_length),
                    beat.eq(Mux(beat == window_beats, beat, beat + 1)),
                ]
                with m.If(store):
                    m.d.sync += stored_beats.eq(stored_beats + 1)
                with m.If(store & reaches_max):
                    m.d.sync += cut.eq(1)
        return m

