"""A first-word-fall-through FIFO whose read side comes from registers.

Ports (those of :class:`amaranth.lib.fifo.SyncFIFO`, so it drops in for one)
-----
``w_data`` : In(width), ``w_en`` : In(1), ``w_rdy`` : Out(1) — the write side; a write with
             ``w_rdy`` low is ignored.
``r_data`` : Out(width), ``r_rdy`` : Out(1), ``r_en`` : In(1) — the read side; a read takes
             place on ``r_rdy & r_en``.
``level``  : Out(range(depth + 1)) — words held.

Latency: one cycle from a write to its word on ``r_data`` (as ``SyncFIFO``'s), because a write
into an empty FIFO bypasses the storage.  Throughput: one word per cycle in and out.

Why: the read side of ``SyncFIFO`` is a distributed-RAM read at the read pointer, so a consumer
that decides from ``r_data`` whether to take it builds a path pointer → RAM → decision → pointer;
on an ECP5 this path (lookup queue → selector) limited the whole core.  Here the consumer sees
registers through one 2:1 multiplexer level.

How: two output registers that take turns.  A read only clears the head's valid bit and moves
the head pointer; the register just emptied is refilled in a later cycle from the storage, or
straight from ``w_data`` when the storage is empty, under an enable that comes from registers
and ``w_en`` only.  So ``r_en`` drives no wide enable, and neither the storage's write nor the
refill depends on it.

The output multiplexer's select is kept in several copies, one per ``READ_SLICE`` bits, so
that no one register fans out to every bit of a wide record.

``w_rdy`` is the storage's own room (``depth - 2`` words behind the two registers), kept as a
register, so it does not depend on ``r_en`` either.  Every accepted word is written into the
storage, even one that goes straight on to an output register (the read pointer then steps over
it in the same cycle): the storage's write enable is ``w_en`` and that register, one LUT in
front of the LUT-RAM slices of a wide record (a wider enable was the ECP5's most common late
endpoint, 900 LUT-RAM write enables).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from openslb.hw.packetbuf import ring_next

__all__ = ["RegisteredFifo", "READ_SLICE"]

#: Output bits per copy of the read select.
READ_SLICE = 32


class RegisteredFifo(wiring.Component):
    def __init__(self, width: int, depth: int) -> None:
        if depth < 3:
            self._MustUse__silence = True   # never built: no "created but never used" warning
            raise ValueError(f"RegisteredFifo needs depth >= 3, not {depth}")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        s_depth = self.depth - 2
        storage = Memory(shape=self.width, depth=s_depth, init=[])
        m.submodules.storage = storage
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(s_depth))     # the storage slot written next
        consume = Signal(range(s_depth))     # the storage slot moved to a register next
        s_level = Signal(range(s_depth + 1))
        s_held = Signal()                    # s_level != 0, as a register
        room = Signal(init=1)                # s_level != s_depth, as a register
        # ... and its complement, a register of its own for the storage's write enable: that
        # LUT sits among the LUT RAMs, and the control logic here must not wait for its output
        # (sharing it was 121f707's path: 2.9 ns out to the RAMs and 3.1 ns back).  (The
        # complement, so that synthesis does not merge the two.)
        full_w = Signal()
        words = [Signal(self.width, name=f"word{k}") for k in range(2)]
        full = Signal(2)          # which output registers hold a word
        head = Signal()           # the register read next
        tail = Signal()           # the register filled next
        # Both pointers advance once per word.  With one register full, it is the head and the
        # tail is the other; with none, head == tail, the storage is empty too (a register is
        # refilled in the cycle after it empties), and the next word written is the next read.
        tail_free = ~full.bit_select(tail, 1)
        head_full = full.bit_select(head, 1)
        # Every accepted word is written into the storage, also one that goes straight on to
        # an output register (then the storage's read pointer steps over it at once): so the
        # storage's write enable is the writer's valid and a registered room bit (``full_w``),
        # one LUT in front of a net that reaches every LUT-RAM slice of a wide record.
        write = self.w_en & room
        fill = tail_free & (s_held | write)
        # The read multiplexer's select has copies of its own, one per READ_SLICE bits of the
        # word, each toggled on a read like the head pointer: one register would fan out to
        # every bit of a several-hundred-bit record, several ns of routing in front of the
        # consumer's logic.  (Each copy's next state is computed from its own output, so
        # synthesis cannot merge them.)
        n_copies = -(-self.width // READ_SLICE)
        selects = [Signal(name=f"head_copy{k}") for k in range(n_copies)]
        m.d.comb += [self.r_rdy.eq(head_full),
                     self.r_data.eq(Cat(*[
                         Mux(sel, words[1][k * READ_SLICE:(k + 1) * READ_SLICE],
                             words[0][k * READ_SLICE:(k + 1) * READ_SLICE])
                         for k, sel in enumerate(selects)]))]
        pop = self.r_en & self.r_rdy
        m.d.comb += [
            w_port.addr.eq(produce),
            w_port.data.eq(self.w_data),
            w_port.en.eq(self.w_en & ~full_w),
            r_port.addr.eq(consume),
            self.w_rdy.eq(room),
            self.level.eq(s_level + full[0] + full[1]),
        ]
        with m.If(write):
            m.d.sync += produce.eq(ring_next(produce, s_depth))
        with m.If(fill):
            m.d.sync += consume.eq(ring_next(consume, s_depth))
        # (the flags' next states from the level's compares and the two strobes, not from the
        # level's next value: a sum and a compare in a row were seven LUTs)
        m.d.sync += s_level.eq(s_level + write - fill)
        with m.If(write & ~fill):
            m.d.sync += [s_held.eq(1), room.eq(s_level != s_depth - 1),
                         full_w.eq(s_level == s_depth - 1)]
        with m.Elif(fill & ~write):
            m.d.sync += [s_held.eq(s_level != 1), room.eq(1), full_w.eq(0)]
        incoming = Mux(s_held, r_port.data, self.w_data)
        for k in range(2):
            with m.If(fill & (tail == k)):
                m.d.sync += [words[k].eq(incoming), full[k].eq(1)]
            with m.Elif(pop & (head == k)):
                m.d.sync += full[k].eq(0)
        with m.If(fill):
            m.d.sync += tail.eq(~tail)
        with m.If(pop):
            m.d.sync += [head.eq(~head)] + [sel.eq(~sel) for sel in selects]
        return m
