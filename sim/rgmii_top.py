"""A board top for simulation: :class:`~openslb.hw.appliance.EthAppliance` behind RGMII pins.

On a board, the RGMII pins go through the FPGA's DDR buffers (platform primitives, which a
simulator does not have).  Here the DDR buffers are written out in Amaranth: an input pin is
sampled at the rising edge (into a register of the positive-edge domain) and at the falling
edge (a register of a negative-edge domain of the same clock), and both halves reach the
adapter in the same cycle; an output pin shows the rising-edge half while the clock is high and
the falling-edge half while it is low.  Everything behind the pins is the board top's own
logic (:class:`~openslb.hw.mac.RgmiiAdapter`, the MACs, the core, the UART bridge), so a
cocotb test on these pins is a test of a whole board top with an RGMII model.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.appliance import EthAppliance
from openslb.hw.mac import RgmiiAdapter
from openslb.hw.spec import Params

__all__ = ["RgmiiSimTop"]


class RgmiiSimTop(wiring.Component):
    def __init__(self, params: Params, divisor: int, core_hz: float) -> None:
        self.params = params
        self.divisor = divisor
        self.core_hz = core_hz
        members = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(6)}
        for k in range(2):
            members |= {f"rgmii{k}_rx_clk": In(1), f"rgmii{k}_rx_ctl": In(1),
                        f"rgmii{k}_rxd": In(4), f"rgmii{k}_tx_clk": Out(1),
                        f"rgmii{k}_tx_ctl": Out(1), f"rgmii{k}_txd": Out(4)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.app = app = EthAppliance(self.params, self.divisor, led_stretch_bits=4,
                                                 core_hz=self.core_hz)
        m.d.comb += [app.uart_rx.eq(self.uart_rx), self.uart_tx.eq(app.uart_tx),
                     self.leds.eq(app.leds)]
        for k in range(2):
            pin = lambda name: getattr(self, f"rgmii{k}_{name}")  # noqa: E731
            pos, neg, tx = f"eth{k}_rx", f"eth{k}_rx_neg", f"eth{k}_tx"
            # every port domain is clocked by the PHY's receive clock and reset with the core
            m.domains += [ClockDomain(pos), ClockDomain(tx), ClockDomain(neg, clk_edge="neg")]
            for dom in (pos, neg, tx):
                m.d.comb += [ClockSignal(dom).eq(pin("rx_clk")), ResetSignal(dom).eq(ResetSignal())]
            m.submodules[f"rgmii{k}"] = adapter = DomainRenamer(pos)(RgmiiAdapter())
            # DDR input: rising half, falling half, then both into the next rising edge
            rise, fall = Signal(5), Signal(5)
            m.d[pos] += rise.eq(Cat(pin("rxd"), pin("rx_ctl")))
            m.d[neg] += fall.eq(Cat(pin("rxd"), pin("rx_ctl")))
            m.d[pos] += [adapter.rx_rise.eq(rise), adapter.rx_fall.eq(fall)]
            # DDR output: launched at the rising edge, each half shown for half a period
            q_rise, q_fall = Signal(5), Signal(5)
            m.d[f"eth{k}_tx"] += [q_rise.eq(adapter.tx_rise), q_fall.eq(adapter.tx_fall)]
            clk = ClockSignal(f"eth{k}_tx")
            out = Mux(clk, q_rise, q_fall)
            m.d.comb += [pin("txd").eq(out[0:4]), pin("tx_ctl").eq(out[4]), pin("tx_clk").eq(clk)]
            m.d.comb += [getattr(app, f"eth{k}_rx_dv").eq(adapter.rx_dv),
                         getattr(app, f"eth{k}_rx_er").eq(adapter.rx_er),
                         getattr(app, f"eth{k}_rxd").eq(adapter.rxd),
                         getattr(app, f"eth{k}_link").eq(adapter.link),
                         getattr(app, f"eth{k}_rx_ce").eq(adapter.rx_ce),
                         getattr(app, f"eth{k}_tx_ce").eq(adapter.tx_ce),
                         adapter.nibble.eq(getattr(app, f"eth{k}_nibble")),
                         adapter.tx_en.eq(getattr(app, f"eth{k}_tx_en")),
                         adapter.tx_er.eq(getattr(app, f"eth{k}_tx_er")),
                         adapter.txd.eq(getattr(app, f"eth{k}_txd"))]
        return m
