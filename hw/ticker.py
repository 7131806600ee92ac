"""Ticker: connection time, in ticks of a configured number of clock cycles.

Ports
-----
``tick_cycles`` : In(32) — clock cycles per tick (CONN_TICK_CYCLES); 0 stops the clock-driven
                  ticks.
``tick``        : In(1) strobe, with ``w_data`` In(32) — CONN_TICK: add ``w_data`` ticks.
``now``         : Out(32) — ticks so far (CONN_NOW); the connection table and the client
                  bindings stamp and age their entries with it.

Timing: the cycle count runs down from a registered ``tick_cycles - 1`` to zero (a zero test and
a decrement, no compare against the register), and what ``now`` gains is summed a cycle before
it is added, so no path holds more than one 32-bit carry chain.  A tick or a CONN_TICK write
shows in ``now`` two cycles later; a new ``tick_cycles`` restarts the count.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ticker"]


class Ticker(wiring.Component):
    def __init__(self) -> None:
        super().__init__({"tick_cycles": In(32), "tick": In(1), "w_data": In(32),
                          "now": Out(32)})

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
        step = Signal(32)
        m.d.sync += [step.eq(Mux(self.tick, self.w_data, 0) + (expired & running)),
                     self.now.eq(self.now + step)]
        return m
