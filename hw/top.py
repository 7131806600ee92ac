"""The appliance top level: the dispatch core managed through the UART register bridge.

Ports
-----
``i``, ``i_port``, ``o`` : the core's frame streams and the port of the frame going in (see
             :class:`~openslb.hw.pipeline.DispatchCore`).
``uart_rx``  : In(1) — management serial line from the host (idle high).
``uart_tx``  : Out(1) — management serial line to the host.

``divisor`` is the UART's clock cycles per bit (``clk_hz // baud``, fixed at build time).  Board
tops add MACs and pins around this; the emulator and the cocotb tests use it as it is.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from openslb.hw.bridge import RegisterBridge
from openslb.hw.layouts import beat_layout, egress_beat_layout
from openslb.hw.pipeline import DispatchCore
from openslb.hw.spec import (BRIDGE_TIMEOUT_BYTES, DEFAULT_PARAMS, MAC_COUNTER_NAMES, MAC_PORTS,
                             Params)
from openslb.hw.uart import UartRx, UartTx

__all__ = ["ApplianceTop", "uart_divisor"]


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz`` (refused if off by more than 2 %)."""
    divisor = round(clk_hz / baud)
    if divisor < 4 or abs(clk_hz / divisor - baud) / baud > 0.02:
        raise ValueError(f"{baud} baud cannot be made from a {clk_hz / 1e6:g} MHz clock")
    return divisor


class ApplianceTop(wiring.Component):
    def __init__(self, params: Params = DEFAULT_PARAMS, divisor: int = 1356) -> None:
        self.params = params
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(beat_layout(params))),
            "i_port": In(1),
            "o": Out(stream.Signature(egress_beat_layout(params))),
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "mac_stat": In(32).array(MAC_PORTS * len(MAC_COUNTER_NAMES)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = DispatchCore(self.params)
        m.submodules.uart_rx = rx = UartRx(self.divisor)
        m.submodules.uart_tx = tx = UartTx(self.divisor)
        m.submodules.bridge = bridge = RegisterBridge(
            timeout=BRIDGE_TIMEOUT_BYTES * 10 * self.divisor)
        connect(m, wiring.flipped(self.i), core.i)
        m.d.comb += core.i_port.eq(self.i_port)
        connect(m, core.o, wiring.flipped(self.o))
        connect(m, rx.o, bridge.rx)
        connect(m, bridge.tx, tx.i)
        connect(m, bridge.bus, core.bus)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        for k, word in enumerate(self.mac_stat):
            m.d.comb += core.mac_stat[k].eq(word)
        return m
