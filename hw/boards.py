"""Board top levels (through amaranth-boards): pins, clocks and DDR buffers around
:class:`~openslb.hw.appliance.EthAppliance`, and an iCE40 bring-up top.

=================  ==============================  ===========================================
board              ports                           notes
=================  ==============================  ===========================================
``versa_ecp5``     RGMII 0 = client side,          Lattice Versa ECP5 (LFE5UM-45F); core at
                   RGMII 1 = server side           50 MHz from a PLL; UART on the FTDI
``colorlight_5a75b`` RGMII 0 = client side,        Colorlight 5A-75B r7.0 (LFE5U-25F): fewer
                   RGMII 1 = server side           groups (its 56 block RAMs); core on 25 MHz;
                                                   UART on J19 (LED pin = TX, key pin = RX)
``icebreaker``     none (bring-up)                 iCE40UP5K: the UART bridge and the register
                                                   bank only, so the serial link and the CLI
                                                   can be checked before an ECP5 board
=================  ==============================  ===========================================

Each RGMII port's receive clock clocks both its receive and its transmit side (the PHY runs it
at 125 MHz at 1 Gb/s), so no PLL is needed; the transmit clock is forwarded through a DDR
output in phase with the data, for a PHY that adds the RGMII delay itself (RGMII-ID).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from amaranth import (Cat, ClockDomain, ClockSignal, DomainRenamer, Instance, Module,
                      ResetSignal, Signal)
from amaranth.lib import wiring

from openslb.hw.appliance import EthAppliance
from openslb.hw.bridge import RegisterBridge
from openslb.hw.mac import RgmiiAdapter
from openslb.hw.regbank import RegBank
from openslb.hw.spec import BRIDGE_TIMEOUT_BYTES, ID_MAGIC, UART_DEFAULT_BAUD, Params, params_word
from openslb.hw.top import uart_divisor
from openslb.hw.uart import UartRx, UartTx

__all__ = ["BOARDS", "Board", "board_top", "platform_for"]


@dataclass(frozen=True)
class Board:
    platform: str               #: "module:Class" in amaranth_boards
    params: Params
    kind: str = "ethernet"      #: "ethernet" (the appliance) or "bridge" (bring-up)
    ports: tuple[str, ...] = ("client side", "server side")
    loader: str = ""            #: openFPGALoader board name
    notes: str = ""
    shared_phy_pins: bool = False
    #: ECP5 PLL for the core clock: (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE) as computed by
    #: ecppll; None runs the core on the board oscillator
    pll: tuple[int, int, int, int] | None = None
    #: yosys's LUT mapper on ECP5: "abc9" (synth_ecp5's own, the default) or "abc" (a
    #: work-around where abc9 fails; see :func:`yosys_overrides`)
    lut_mapper: str = "abc9"


#: Longest frame an Ethernet board forwards (bytes without FCS): room for baby giants, and the
#: MAC's frame FIFOs are then one block RAM each (:func:`~openslb.hw.mac.frame_fifo_depth`).
BOARD_MAX_FRAME = 2032

BOARDS = {
    "versa_ecp5": Board(
        # A smaller table set than the default core's: with 16 VIPs, 8 groups and 256 reals the
        # design took 88 % of the 45F's logic cells and neither router could route it (router1
        # still had 92,000 overused wires after 20 minutes, router2 about 20,000 after 12
        # iterations); the default core's 16 groups would also need more block RAM than the 45F
        # has (each group's two Maglev banks take 4).  With 8 VIPs, 8 groups and 128 reals it
        # takes 74 % of the LUT4s (64 reals made yosys 0.70's abc9 fail an internal assertion).
        # nextpnr's default router1 is used: router2 stalled on it at about 2,800 overused
        # wires after 26 iterations.
        "amaranth_boards.versa_ecp5:VersaECP5Platform",
        Params(width=64, n_vips=8, n_groups=8, n_reals=128, max_frame=BOARD_MAX_FRAME),
        loader="ecp5_evn",
        pll=(2, 1, 12, 5),      # 100 MHz → 50 MHz (ecppll -i 100 -o 50): the core's measured
                                # fmax is below 100 MHz, and 1 Gb/s needs only 16 MHz
        notes="Lattice Versa ECP5: Ethernet PHY 0 (RGMII 0) is the client side, "
              "PHY 1 (RGMII 1) the server side; UART over the FTDI USB port."),
    "colorlight_5a75b": Board(
        # The stateless profile (Params.stateful): the full core with these tables needed
        # 30669 of the LFE5U-25F's 24288 logic cells and 58 of its 56 block RAMs (8679e8f);
        # the connection table, the client bindings and the connection counts were most of it.
        "amaranth_boards.colorlight_5a75b_r7_0:Colorlight_5A75B_R70Platform",
        # abc9 (synth_ecp5's only mapper in yosys 0.70, which ignores -noabc9) fails an
        # internal assertion on this board top (ABC_OPS_REINTEGRATE: GetSize(conn.first) ==
        # GetSize(conn.second)), as on every 64-real board top tried; the core alone, and
        # each block alone, map fine.  The older abc mapper is used instead.
        Params(width=64, n_groups=4, n_reals=64, n_vips=8, stateful=False,
               max_frame=BOARD_MAX_FRAME), loader="colorlight",
        lut_mapper="abc",
        shared_phy_pins=True,
        notes="Colorlight 5A-75B r7.0: Ethernet port J1 (RGMII 0) client side, J2 (RGMII 1) "
              "server side; UART on J19 (DATA_LED- = TX, KEY+ = RX), 3.3 V."),
    "icebreaker": Board(
        "amaranth_boards.icebreaker:ICEBreakerPlatform",
        Params(width=8, n_vips=2, n_groups=2, n_reals=32, table_stride=256, max_frame=128),
        kind="bridge", ports=(), loader="ice40_generic",
        notes="iCEBreaker: UART bridge and register bank for bring-up over the FTDI USB port."),
}


def yosys_overrides(board: Board) -> dict[str, str]:
    """Amaranth build overrides for the board's LUT mapper: with "abc", synth_ecp5 stops before
    its LUT mapping, abc maps to LUT4s as synth_ecp5 would with abc9 (latches first), and
    synth_ecp5 finishes from its cell mapping on."""
    if board.lut_mapper == "abc9":
        return {}
    if board.lut_mapper != "abc":
        raise ValueError(f"lut_mapper must be abc9 or abc, not {board.lut_mapper!r}")
    return {"synth_opts": "-run :map_luts",
            "script_after_synth": "\n".join([
                "check -latchonly -assert", "techmap -map +/lattice/latches_map.v",
                "abc -lut 4 -dress", "clean", "synth_ecp5 -run map_cells: -top openslb"])}


def platform_for(name: str):
    """An instance of the board's amaranth-boards platform."""
    try:
        board = BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}") from None
    module, cls = board.platform.split(":")
    platform_cls = getattr(importlib.import_module(module), cls)
    if board.shared_phy_pins:
        platform_cls = _without_shared_phy_pins(platform_cls)
    return _without_programmer(platform_cls)()


def _without_programmer(cls):
    """Some amaranth-boards platforms (the 5A-75B's) list openFPGALoader among the tools a
    *build* needs; ours never programs through the platform (``make flash`` calls openFPGALoader
    itself and says clearly when it is missing), so a build must not require it."""
    def required_tools(self):
        return [tool for tool in cls.required_tools.fget(self) if tool != "openFPGALoader"]
    return type(cls.__name__, (cls,), {"required_tools": property(required_tools)})


def _without_shared_phy_pins(cls):
    """The 5A-75B's two PHYs share reset and MDIO pins, which amaranth-boards declares in both
    RGMII resources: port 1 is redeclared without them (port 0 drives them for both)."""
    from amaranth.build import Resource
    resources = []
    for r in cls.resources:
        if r.name == "eth_rgmii" and r.number == 1:
            ios = [s for s in r.ios if s.name not in ("rst", "mdc", "mdio")]
            r = Resource(r.name, r.number, *ios, r.attrs)
        resources.append(r)
    return type(cls.__name__, (cls,), {"resources": resources})


class _BoardTop(wiring.Component):
    """A board top: no ports of its own (its pins come from the platform)."""

    def __init__(self, board: Board, baud: int = UART_DEFAULT_BAUD) -> None:
        self.board = board
        self.baud = baud
        super().__init__({})


class EthernetBoardTop(_BoardTop):
    """The appliance on an ECP5 board with two RGMII ports."""

    def elaborate(self, platform):
        m = Module()
        clk_hz = self._core_clock(m, platform)
        app = EthAppliance(self.board.params, uart_divisor(clk_hz, self.baud), core_hz=clk_hz)
        m.submodules.app = app
        uart = platform.request("uart", 0)
        m.d.comb += [app.uart_rx.eq(uart.rx.i), uart.tx.o.eq(app.uart_tx)]
        for k in range(2):
            self._rgmii_port(m, platform, app, k)
        for n in range(len(app.leds)):
            try:
                led = platform.request("led", n)
            except Exception:   # boards with fewer LEDs (the 5A-75B's is the UART's TX)
                break
            m.d.comb += led.o.eq(app.leds[n])
        return m

    def _core_clock(self, m: Module, platform) -> float:
        """The ``sync`` domain: the board oscillator, or an ECP5 PLL's output from it."""
        if self.board.pll is None:
            return platform.default_clk_frequency
        clki_div, clkfb_div, clkop_div, cphase = self.board.pll
        f_in = platform.default_clk_frequency
        f_out = f_in * clkfb_div / clki_div
        osc = platform.request(platform.default_clk, dir="i").i
        # "keep": the constraint names this net, so synthesis must not merge it away
        core_clk, locked = Signal(name="core_clk", attrs={"keep": 1}), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(round(f_in / 1e6)), a_FREQUENCY_PIN_CLKOP=str(round(f_out / 1e6)),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKI_DIV=clki_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop_div, p_CLKOP_CPHASE=cphase,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=osc, o_CLKOP=core_clk, i_CLKFB=core_clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(core_clk), ResetSignal("sync").eq(~locked)]
        platform.add_clock_constraint(core_clk, f_out)
        return f_out

    def _rgmii_port(self, m: Module, platform, app, k: int) -> None:
        res = platform.lookup("eth_rgmii", k)
        names = {s.name for s in res.ios}
        ctl_rx = "rx_ctl" if "rx_ctl" in names else "rx_ctrl"
        ctl_tx = "tx_ctl" if "tx_ctl" in names else "tx_ctrl"
        xdr = {"rx_data": 2, ctl_rx: 2, "tx_data": 2, ctl_tx: 2, "tx_clk": 2, "rx_clk": 0}
        xdr |= {n: 0 for n in ("rst", "mdc", "mdio") if n in names}
        rgmii = platform.request("eth_rgmii", k, xdr=xdr)
        rx_dom, tx_dom = f"eth{k}_rx", f"eth{k}_tx"
        m.domains += ClockDomain(rx_dom, local=True)
        m.domains += ClockDomain(tx_dom, local=True)
        rx_clk = Signal(name=f"eth{k}_clk", attrs={"keep": 1})   # named by the constraint
        m.d.comb += [rx_clk.eq(rgmii.rx_clk.i),
                     ClockSignal(rx_dom).eq(rx_clk), ClockSignal(tx_dom).eq(rx_clk)]
        platform.add_clock_constraint(rx_clk, 125e6)   # 1 Gb/s RGMII (10/100: 25/2.5 MHz)
        m.submodules[f"rgmii{k}"] = adapter = DomainRenamer(rx_dom)(RgmiiAdapter())
        rx_data, rx_ctl = getattr(rgmii, "rx_data"), getattr(rgmii, ctl_rx)
        tx_data, tx_ctl = getattr(rgmii, "tx_data"), getattr(rgmii, ctl_tx)
        m.d.comb += [
            rx_data.i_clk.eq(ClockSignal(rx_dom)), rx_ctl.i_clk.eq(ClockSignal(rx_dom)),
            adapter.rx_rise.eq(Cat(rx_data.i0, rx_ctl.i0)),
            adapter.rx_fall.eq(Cat(rx_data.i1, rx_ctl.i1)),
            tx_data.o_clk.eq(ClockSignal(tx_dom)), tx_ctl.o_clk.eq(ClockSignal(tx_dom)),
            tx_data.o0.eq(adapter.tx_rise[0:4]), tx_ctl.o0.eq(adapter.tx_rise[4]),
            tx_data.o1.eq(adapter.tx_fall[0:4]), tx_ctl.o1.eq(adapter.tx_fall[4]),
            rgmii.tx_clk.o_clk.eq(ClockSignal(tx_dom)), rgmii.tx_clk.o0.eq(1),
            rgmii.tx_clk.o1.eq(0),
            getattr(app, f"eth{k}_rx_dv").eq(adapter.rx_dv),
            getattr(app, f"eth{k}_rx_er").eq(adapter.rx_er),
            getattr(app, f"eth{k}_rxd").eq(adapter.rxd),
            getattr(app, f"eth{k}_link").eq(adapter.link),
            getattr(app, f"eth{k}_rx_ce").eq(adapter.rx_ce),
            getattr(app, f"eth{k}_tx_ce").eq(adapter.tx_ce),
            adapter.nibble.eq(getattr(app, f"eth{k}_nibble")),
            adapter.tx_en.eq(getattr(app, f"eth{k}_tx_en")),
            adapter.tx_er.eq(getattr(app, f"eth{k}_tx_er")),
            adapter.txd.eq(getattr(app, f"eth{k}_txd")),
        ]
        if "rst" in names:
            m.d.comb += [rgmii.rst.o.eq(0),              # PHY out of reset
                         rgmii.mdc.o.eq(0), rgmii.mdio.oe.eq(0)]


class BridgeBoardTop(_BoardTop):
    """Bring-up: the UART register bridge and the register bank of a small core (ID, PARAMS and
    every read/write register answer), so the link and the firmware can be checked."""

    def elaborate(self, platform):
        m = Module()
        clk_hz = platform.default_clk_frequency
        divisor = uart_divisor(clk_hz, self.baud)
        m.submodules.rx = rx = UartRx(divisor)
        m.submodules.tx = tx = UartTx(divisor)
        m.submodules.bridge = bridge = RegisterBridge(BRIDGE_TIMEOUT_BYTES * 10 * divisor)
        m.submodules.regs = regs = RegBank(self.board.params)
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        wiring.connect(m, bridge.bus, regs.bus)
        m.d.comb += [regs.id.eq(ID_MAGIC), regs.params.eq(params_word(self.board.params))]
        uart = platform.request("uart", 0)
        m.d.comb += [rx.rx.eq(uart.rx.i), uart.tx.o.eq(tx.tx)]
        activity = Signal(20)
        with m.If(rx.o.valid | tx.i.valid):
            m.d.sync += activity.eq(-1)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)
        m.d.comb += platform.request("led", 0).o.eq(activity != 0)
        return m


def board_top(name: str, baud: int = UART_DEFAULT_BAUD):
    """The top level of board ``name``, its management UART at ``baud`` (fixed at build time)."""
    board = BOARDS[name]
    return (EthernetBoardTop if board.kind == "ethernet" else BridgeBoardTop)(board, baud)
