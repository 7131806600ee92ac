"""Ticker: connection time, in ticks of a configured number of clock cycles.

Ports
-----
``tick_cycles`` : In(32) — clock cycles per tick (CONN_TICK_CYCLES); 0 stops the clock-driven
                  ticks.
``tick``        : In(1) strobe, with ``w_data`` In(32) — CONN_TICK: add ``w_data`` ticks.
``now``         : Out(32) — ticks so far (CONN_NOW); the connection table and the client
                  bindings stamp and age their entries with it.
``now_next``    : Out(32) — ``now`` as it will be in the next cycle (combinational), so that
                  values derived from it can be registered in step with it.

Timing: the cycle count runs down from a registered ``tick_cycles - 1`` to zero (a zero test and
a decrement, no compare against the register), its expiry is registered, and what ``now``
gains is summed a cycle before it is added, so no path holds more than one 32-bit carry chain
or a zero test in front of one.  A CONN_TICK write shows in ``now`` two cycles later, a
clock-driven tick three cycles after the count expires; a new ``tick_cycles`` restarts the
count.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ticker"]


class Ticker(wiring.Component):
    def __init__(self) -> None:
        super().__init__({"tick_cycles": In(32), "tick": In(1), "w_data": In(32),
                          "now": Out(32), "now_next": Out(32)})

    def elaborate(self, platform):
        m = Module()
        reload = Signal(32)
        running = Signal()
        # a new period restarts the count (a registered change flag, two cycles after the write)
        previous = Signal(32)
        changed = Signal()
        m.d.sync += [reload.eq(self.tick_cycles - 1), running.eq(self.tick_cycles != 0),
                     previous.eq(self.tick_cycles), changed.eq(previous != self.tick_cycles)]
        count = Signal(32)
        expired = Signal()
        m.d.comb += expired.eq(count == 0)
        m.d.sync += count.eq(Mux(expired | ~running | changed, reload, count - 1))
        # the expiry is registered before it is added: the zero test in front of the step's
        # carry chain set the core's fmax on an ECP5-85F (76.70 MHz at c2c9029)
        due = Signal()
        m.d.sync += due.eq(expired & running)
        step = Signal(32)
        m.d.sync += step.eq(Mux(self.tick, self.w_data, 0) + due)
        m.d.comb += self.now_next.eq(self.now + step)
        m.d.sync += self.now.eq(self.now_next)
        return m
