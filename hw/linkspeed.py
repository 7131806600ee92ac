"""Link speed of an RGMII port, told from its receive clock.

An RGMII PHY runs its receive clock at 125 MHz at 1 Gb/s, 25 MHz at 100 Mb/s and 2.5 MHz at
10 Mb/s.  :class:`LinkSpeedMeter` counts that clock against the core clock, so the port's
speed is known without MDIO and without the PHY's optional in-band status (which not every PHY
sends).  This is how verilog-ethernet's RGMII MACs pick their mode too.

Ports
-----
``speed``: Out(2), ``sync`` domain — 0 = 10, 1 = 100, 2 = 1000 Mb/s (the RGMII in-band status
    code).  1000 from reset until the first window has been measured; kept as it was while the
    receive clock stops (a window with no edge at all).
``nibble``: Out(1), receive domain — ``speed`` is 10 or 100 Mb/s, through a two-flop
    synchroniser: what :class:`~openslb.hw.mac.RgmiiAdapter` needs.

How: bit 6 of a free-running counter in the receive domain changes every 64 receive cycles (at
most about 2 MHz, so a core clock of 8 MHz or more samples every change); it crosses into the
core clock through a synchroniser, and the changes seen in a window of ``window_us`` are
compared with the counts expected at the geometric means of the three clocks (56 and 7.9 MHz).
Latency: one window (128 µs by default) after the clock changes.  A speed that changes while a
frame is on the wire costs that frame (its FCS is wrong, and counted).
"""

from __future__ import annotations

import math

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import Out

__all__ = ["LinkSpeedMeter", "SPEED_10", "SPEED_100", "SPEED_1000", "RX_CLOCK_HZ"]

SPEED_10, SPEED_100, SPEED_1000 = 0, 1, 2
#: RGMII receive clock at each speed code.
RX_CLOCK_HZ = {SPEED_10: 2.5e6, SPEED_100: 25e6, SPEED_1000: 125e6}
#: Receive cycles between two changes of the measured bit.
DIVIDE_BITS = 6


class LinkSpeedMeter(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    ref_hz:
        Frequency of the ``sync`` (core) clock.
    rx_domain:
        The port's receive clock domain.
    window_us:
        Measuring window; longer is surer (the 10/100 Mb/s threshold needs a few edges).
    """

    def __init__(self, ref_hz: float, rx_domain: str, window_us: float = 128.0) -> None:
        if ref_hz < 8e6:
            raise ValueError(f"the core clock ({ref_hz / 1e6:g} MHz) is too slow to measure a "
                             "1 Gb/s receive clock (at least 8 MHz)")
        self.rx_domain = rx_domain
        self.window = max(1, round(ref_hz * window_us * 1e-6))
        expected = lambda hz: self.window / ref_hz * hz / (1 << DIVIDE_BITS)  # noqa: E731
        clocks = RX_CLOCK_HZ
        self.at_least_1000 = math.ceil(expected(math.sqrt(clocks[SPEED_1000] * clocks[SPEED_100])))
        self.at_least_100 = math.ceil(expected(math.sqrt(clocks[SPEED_100] * clocks[SPEED_10])))
        if self.at_least_100 < 2:
            raise ValueError(f"a {window_us} µs window is too short to tell 10 from 100 Mb/s")
        super().__init__({"speed": Out(2, init=SPEED_1000), "nibble": Out(1)})

    def elaborate(self, platform):
        m = Module()
        divider = Signal(DIVIDE_BITS + 1)
        m.d[self.rx_domain] += divider.eq(divider + 1)
        seen, last = Signal(), Signal()
        m.submodules.crossing = FFSynchronizer(divider[-1], seen, o_domain="sync")
        m.d.sync += last.eq(seen)
        edges = Signal(range(self.window + 2))
        timer = Signal(range(self.window), init=self.window - 1)
        m.d.sync += [timer.eq(timer - 1), edges.eq(edges + (seen != last))]
        with m.If(timer == 0):
            m.d.sync += [timer.eq(self.window - 1), edges.eq(seen != last)]
            with m.If(edges >= self.at_least_1000):
                m.d.sync += self.speed.eq(SPEED_1000)
            with m.Elif(edges >= self.at_least_100):
                m.d.sync += self.speed.eq(SPEED_100)
            with m.Elif(edges != 0):
                m.d.sync += self.speed.eq(SPEED_10)
        m.submodules.to_rx = FFSynchronizer(self.speed != SPEED_1000, self.nibble,
                                            o_domain=self.rx_domain)
        return m
