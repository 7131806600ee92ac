"""The appliance with its Ethernet ports: what every board top contains, minus the pins.

Ports
-----
``eth0_rx_dv``/``eth0_rx_er``/``eth0_rxd``, ``eth0_tx_en``/``eth0_tx_er``/``eth0_txd``: GMII of
    port 0, the **client side** (clock domains ``eth0_rx`` and ``eth0_tx``);
``eth1_…``: the same for port 1, the **server side** (``eth1_rx``, ``eth1_tx``);
``uart_rx``, ``uart_tx``: the management UART;
``eth0_link``, ``eth1_link``: In(1) — the PHY's link status (RGMII in-band status, in the
    port's receive domain; tie high when the PHY does not report it);
``eth0_rx_ce``/``eth0_tx_ce``, ``eth1_…``: In(1), default high — the cycles that carry a byte
    (at 10/100 Mb/s every other one: :class:`~openslb.hw.mac.RgmiiAdapter` makes them);
``eth0_nibble``, ``eth1_nibble``: Out(1), in the port's receive domain — the port's receive
    clock runs at 10/100 Mb/s speed (measured against the core clock by
    :class:`~openslb.hw.linkspeed.LinkSpeedMeter`): what the RGMII adapter's ``nibble`` needs;
``leds``: Out(6) — port 0 receive activity, port 1 transmit activity, port 0 transmit activity
    (ARP replies), a heartbeat, port 0 link, port 1 link.

Frames received on both ports go through the dispatch core (merged a frame at a time by
:class:`~openslb.hw.ingress.IngressMerge`, tagged with their port).  What leaves it for the
servers goes out of port 1, what goes to the clients (ARP replies to them, NAT return traffic)
out of port 0, ARP replies to the reals out of port 1, and frames for the management host are
discarded (a board has no host port; the core counts them as ``TX_HOST``).  With DSR the reals
answer the clients directly; what they send to the appliance is NAT return traffic or their ARP
requests for its address.
The MACs' receive counters are readable as the ``MAC_STAT`` registers.
"""

from __future__ import annotations

from amaranth import Cat, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer, PulseSynchronizer
from amaranth.lib.wiring import In, Out

from openslb.hw.ingress import IngressMerge
from openslb.hw.linkspeed import LinkSpeedMeter
from openslb.hw.mac import MAC_COUNTERS, EthPort
from openslb.hw.spec import DEFAULT_PARAMS, EgressPort, Params
from openslb.hw.top import ApplianceTop

__all__ = ["EthAppliance"]

#: LED activity pulses are stretched to this many core cycles (visible blinks).
LED_STRETCH_BITS = 22


class EthAppliance(wiring.Component):
    def __init__(self, params: Params = DEFAULT_PARAMS, divisor: int = 868,
                 led_stretch_bits: int = LED_STRETCH_BITS, core_hz: float = 50e6) -> None:
        self.params = params
        self.divisor = divisor
        self.led_stretch_bits = led_stretch_bits
        self.core_hz = core_hz
        members = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(6)}
        for k in range(2):
            members |= {f"eth{k}_rx_dv": In(1), f"eth{k}_rx_er": In(1), f"eth{k}_rxd": In(8),
                        f"eth{k}_link": In(1, init=1), f"eth{k}_nibble": Out(1),
                        f"eth{k}_rx_ce": In(1, init=1), f"eth{k}_tx_ce": In(1, init=1),
                        f"eth{k}_tx_en": Out(1), f"eth{k}_tx_er": Out(1), f"eth{k}_txd": Out(8)}
        super().__init__(members)

    def _stretch(self, m: Module, pulse) -> Signal:
        timer = Signal(self.led_stretch_bits)
        with m.If(pulse):
            m.d.sync += timer.eq(-1)
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        return timer != 0

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.app = app = ApplianceTop(p, self.divisor)
        ports = []
        for k in range(2):
            port = DomainRenamer({"eth_rx": f"eth{k}_rx", "eth_tx": f"eth{k}_tx"})(EthPort(p))
            m.submodules[f"eth{k}"] = port
            ports.append(port)
            meter = LinkSpeedMeter(self.core_hz, f"eth{k}_rx")
            m.submodules[f"eth{k}_speed"] = meter
            m.d.comb += getattr(self, f"eth{k}_nibble").eq(meter.nibble)
            m.d.comb += [port.rx_dv.eq(getattr(self, f"eth{k}_rx_dv")),
                         port.rx_er.eq(getattr(self, f"eth{k}_rx_er")),
                         port.rxd.eq(getattr(self, f"eth{k}_rxd")),
                         port.rx_ce.eq(getattr(self, f"eth{k}_rx_ce")),
                         port.tx_ce.eq(getattr(self, f"eth{k}_tx_ce")),
                         getattr(self, f"eth{k}_tx_en").eq(port.tx_en),
                         getattr(self, f"eth{k}_tx_er").eq(port.tx_er),
                         getattr(self, f"eth{k}_txd").eq(port.txd)]
            # each counter event crosses into the core clock as a pulse and is counted there
            for n, name in enumerate(MAC_COUNTERS):
                count = getattr(port, name)        # counts in the port's receive domain
                sync = PulseSynchronizer(i_domain=f"eth{k}_rx", o_domain="sync")
                m.submodules[f"eth{k}_{name}_sync"] = sync
                last = Signal(32, name=f"eth{k}_{name}_last")
                m.d[f"eth{k}_rx"] += last.eq(count)
                m.d.comb += sync.i.eq(count != last)
                total = Signal(32, name=f"eth{k}_{name}")
                with m.If(sync.o):
                    m.d.sync += total.eq(total + 1)
                m.d.comb += app.mac_stat[k * len(MAC_COUNTERS) + n].eq(total)
        client, server = ports
        # both ports' frames → the core, each tagged with its port
        m.submodules.ingress = ingress = IngressMerge(p)
        wiring.connect(m, client.o, ingress.client)
        wiring.connect(m, server.o, ingress.server)
        wiring.connect(m, ingress.o, app.i)
        m.d.comb += app.i_port.eq(ingress.o_port)
        # the core's egress → the port its tag names
        egress = app.o.payload
        for port, tag in ((client, EgressPort.CLIENT), (server, EgressPort.SERVER)):
            m.d.comb += [port.i.payload.data.eq(egress.data), port.i.payload.keep.eq(egress.keep),
                         port.i.payload.first.eq(egress.first), port.i.payload.last.eq(egress.last),
                         port.i.valid.eq(app.o.valid & (egress.port == tag))]
        with m.Switch(egress.port):
            with m.Case(EgressPort.CLIENT):
                m.d.comb += app.o.ready.eq(client.i.ready)
            with m.Case(EgressPort.SERVER):
                m.d.comb += app.o.ready.eq(server.i.ready)
            with m.Default():
                m.d.comb += app.o.ready.eq(1)            # no host port on a board
        m.d.comb += [app.uart_rx.eq(self.uart_rx), self.uart_tx.eq(app.uart_tx)]
        heartbeat = Signal(self.led_stretch_bits + 2)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        links = []
        for k in range(2):
            link = Signal(name=f"eth{k}_link_sync")
            m.submodules[f"link_sync{k}"] = FFSynchronizer(getattr(self, f"eth{k}_link"), link)
            links.append(link)
        m.d.comb += self.leds.eq(Cat(
            self._stretch(m, client.o.valid & client.o.ready),
            self._stretch(m, server.i.valid & server.i.ready),
            self._stretch(m, client.i.valid & client.i.ready),
            heartbeat[-1], *links))
        return m
