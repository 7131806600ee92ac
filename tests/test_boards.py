"""Board tops: every one elaborates for its platform (no toolchain), the RGMII adapter maps
nibbles the way RGMII does at 1 Gb/s and at 10/100 Mb/s (a MAC loopback through it at both),
the link speed is told from the receive clock, and one full build (the iCE40 bring-up top, the
quickest) runs through yosys, nextpnr and the packer from pip."""

import json
import random
import warnings

import pytest
from amaranth import ClockDomain, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from openslb.hw.boards import BOARDS, board_top, platform_for
from openslb.hw.mac import MacRx, MacTx, RgmiiAdapter, byte_layout, frame_fifo_depth


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_top_elaborates(board):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plan = platform_for(board).prepare(board_top(board), name="openslb")
    assert "openslb.il" in plan.files


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_build_needs_no_programmer(board):
    # make build must run where openFPGALoader is absent (it is not on pip); make flash asks
    assert "openFPGALoader" not in platform_for(board).required_tools


def test_rgmii_adapter_nibbles():
    dut = RgmiiAdapter()
    seen = {}

    async def bench(ctx):
        ctx.set(dut.rx_rise, 0b1_0101)     # ctl=1 (DV), low nibble 5
        ctx.set(dut.rx_fall, 0b0_1010)     # ctl=0 → DV xor ER = 0 → ER = 1
        ctx.set(dut.txd, 0xC3)
        ctx.set(dut.tx_en, 1)
        ctx.set(dut.tx_er, 0)
        seen.update(rxd=ctx.get(dut.rxd), dv=ctx.get(dut.rx_dv), er=ctx.get(dut.rx_er),
                    rise=ctx.get(dut.tx_rise), fall=ctx.get(dut.tx_fall))
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"rxd": 0xA5, "dv": 1, "er": 1, "rise": 0b1_0011, "fall": 0b1_1100}


def test_icebreaker_bitstream_builds(tmp_path):
    from openslb.sim.board_build import build
    from openslb.sim.runner import REPO
    assert build("icebreaker") == 0
    summary = json.loads((REPO / "build" / "boards" / "icebreaker" / "summary.json").read_text())
    assert summary["timing_met"] and summary["bitstream"].endswith(".bin")
    assert 0 < summary["utilization"]["ICESTORM_LC"]["used"] <= 5280


def test_rgmii_adapter_reads_in_band_link_status():
    dut = RgmiiAdapter()
    seen = []

    async def bench(ctx):
        for rise, fall in ((0b0_1101, 0b0_1101),    # idle: link up, 1000 Mb/s, full duplex
                           (0b1_0000, 0b1_0000),    # a frame's data: the status is kept
                           (0b0_0000, 0b0_0000)):   # idle again: link down
            ctx.set(dut.rx_rise, rise)
            ctx.set(dut.rx_fall, fall)
            await ctx.tick()
            seen.append((ctx.get(dut.link), ctx.get(dut.speed), ctx.get(dut.duplex)))
    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, 2, 1), (1, 2, 1), (0, 0, 0)]


def test_rgmii_adapter_at_100mbps_pairs_nibbles_and_splits_bytes():
    dut = RgmiiAdapter()
    seen = []

    async def bench(ctx):
        ctx.set(dut.nibble, 1)
        ctx.set(dut.txd, 0xC3)
        ctx.set(dut.tx_en, 1)
        # receive: idle, then the byte 0xD5 as nibble 5 then nibble D (same on both edges)
        for dv, nib in ((0, 0), (1, 0x5), (1, 0xD), (0, 0)):
            ctx.set(dut.rx_rise, dv << 4 | nib)
            ctx.set(dut.rx_fall, dv << 4 | nib)
            seen.append((ctx.get(dut.rx_ce), ctx.get(dut.rx_dv), ctx.get(dut.rxd),
                         ctx.get(dut.tx_ce), ctx.get(dut.tx_rise), ctx.get(dut.tx_fall)))
            await ctx.tick()
    sim = Simulator(dut)
    sim.add_clock(40e-9)
    sim.add_testbench(bench)
    sim.run()
    rx = [(ce, dv, rxd if ce and dv else None) for ce, dv, rxd, *_ in seen]
    assert rx == [(1, 0, None), (0, 1, None), (1, 1, 0xD5), (1, 0, None)]
    # transmit: low nibble then high nibble on both edges; the MAC moves on after the second
    tx = [(ce, rise, fall) for *_, ce, rise, fall in seen]
    assert tx[:2] == [(0, 0b1_0011, 0b1_0011), (1, 0b1_1100, 0b1_1100)]
    assert tx[2:] == tx[:2]


async def _send_bytes(ctx, port, frames: list[bytes]) -> None:
    """Drive ``frames`` into a byte stream (:func:`~openslb.hw.mac.byte_layout`), back to back."""
    for frame in frames:
        for n, b in enumerate(frame):
            ctx.set(port.payload, {"data": b, "first": n == 0, "last": n == len(frame) - 1})
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


class _MacLoopback(wiring.Component):
    """MacTx → RGMII adapter → (the pins, through a DDR input register) → the same adapter →
    MacRx, at 1 Gb/s or at 10/100 Mb/s (``nibble``)."""

    def __init__(self, max_frame: int = 256, fifo_depth: int = 512):
        self.max_frame, self.fifo_depth = max_frame, fifo_depth
        super().__init__({"i": In(stream.Signature(byte_layout())),
                          "o": Out(stream.Signature(byte_layout())),
                          "nibble": In(1), "rx_ok": Out(32), "rx_bad_fcs": Out(32),
                          "tx_en": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = MacTx(self.max_frame, self.fifo_depth)
        m.submodules.rx = rx = MacRx(self.max_frame, self.fifo_depth)
        m.submodules.rgmii = rgmii = RgmiiAdapter()
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [rgmii.nibble.eq(self.nibble), rgmii.tx_en.eq(tx.tx_en),
                     rgmii.tx_er.eq(tx.tx_er), rgmii.txd.eq(tx.txd), tx.tx_ce.eq(rgmii.tx_ce),
                     rx.rx_dv.eq(rgmii.rx_dv), rx.rx_er.eq(rgmii.rx_er), rx.rxd.eq(rgmii.rxd),
                     rx.rx_ce.eq(rgmii.rx_ce), self.rx_ok.eq(rx.rx_ok),
                     self.rx_bad_fcs.eq(rx.rx_bad_fcs), self.tx_en.eq(tx.tx_en)]
        m.d.sync += [rgmii.rx_rise.eq(rgmii.tx_rise), rgmii.rx_fall.eq(rgmii.tx_fall)]
        return m


@pytest.mark.parametrize("nibble,longest", [(0, False), (1, False), (0, True)],
                         ids=["1000mbps", "100mbps", "longest-frame-in-smallest-fifo"])
def test_mac_loopback_through_rgmii(nibble, longest):
    frames = [bytes(range(k, k + n)) for k, n in ((1, 60), (7, 61), (3, 200))]
    if longest:
        # frames of max_frame bytes, back to back, through the FIFOs frame_fifo_depth sizes
        # for it (256 bytes for 254: the depth a board's 2032 gets is 2048, one block RAM)
        frames = [bytes((k * 7 + j) & 0xFF for j in range(254)) for k in range(3)]
        dut = _MacLoopback(max_frame=254, fifo_depth=frame_fifo_depth(254))
        assert frame_fifo_depth(254) == 256 and frame_fifo_depth(2032) == 2048
    else:
        dut = _MacLoopback()
    got, line_cycles = [], [0]

    async def send(ctx):
        ctx.set(dut.nibble, nibble)
        await _send_bytes(ctx, dut.i, frames)

    async def receive(ctx):
        ctx.set(dut.o.ready, 1)
        frame = bytearray()
        for _ in range(20_000):
            await ctx.tick()
            line_cycles[0] += ctx.get(dut.tx_en)
            if ctx.get(dut.o.valid):
                frame.append(ctx.get(dut.o.payload.data))
                if ctx.get(dut.o.payload.last):
                    got.append(bytes(frame))
                    frame.clear()
    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run_until(20_000 * 8e-9)
    assert got == frames
    # every byte on the wire (preamble, SFD, frame, FCS) takes one cycle, or two as nibbles
    wire = sum(8 + len(f) + 4 for f in frames)
    assert line_cycles[0] == wire * (2 if nibble else 1)


@pytest.mark.parametrize("rx_ns,speed", [(8, 2), (40, 1), (400, 0)])
def test_link_speed_meter_tells_the_receive_clock(rx_ns, speed):
    from openslb.hw.linkspeed import LinkSpeedMeter
    window_us = 32
    dut = LinkSpeedMeter(156.25e6, "rx", window_us=window_us)
    m = Module()
    m.domains.rx = ClockDomain("rx")
    m.submodules.dut = dut
    seen = []

    async def bench(ctx):
        seen.append(ctx.get(dut.speed))          # 1000 Mb/s until the first window
        await ctx.delay(2.5 * window_us * 1e-6)
        seen.append(ctx.get(dut.speed))
        await ctx.tick("rx").repeat(4)
        seen.append(ctx.get(dut.nibble))
    sim = Simulator(m)
    sim.add_clock(6.4e-9)
    sim.add_clock(rx_ns * 1e-9, domain="rx")
    sim.add_testbench(bench)
    sim.run()
    assert seen == [2, speed, int(speed != 2)]


@pytest.mark.parametrize("every", [1, 2], ids=["every-cycle", "every-other-cycle"])
def test_mac_tx_sends_every_frame_intact_through_a_full_fifo(every):
    # frames arrive faster than the line takes them, so the frame FIFO runs full while its
    # pointers wrap (it once took more bytes than it had room for after a wrap)
    from openslb.model import mac as model
    rng = random.Random(5)
    frames = [rng.randbytes(rng.randrange(14, 250)) for _ in range(40)]
    dut = MacTx(max_frame=256, fifo_depth=256)
    wire = []

    async def feed(ctx):
        await _send_bytes(ctx, dut.i, frames)

    async def line(ctx):
        burst, cycle = bytearray(), 0
        while True:
            ce = int(cycle % every == every - 1)
            ctx.set(dut.tx_ce, ce)
            if ce and ctx.get(dut.tx_en):
                burst.append(ctx.get(dut.txd))
            elif ce and burst:
                wire.append(bytes(burst))
                burst = bytearray()
            await ctx.tick()
            cycle += 1
    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(feed)
    sim.add_testbench(line, background=True)
    sim.run_until(sum(len(model.on_wire(f)) + 12 for f in frames) * every * 8e-9 * 1.1)
    assert len(wire) == len(frames)
    for k, (burst, frame) in enumerate(zip(wire, frames)):
        assert burst == model.on_wire(frame), f"frame {k}"


def test_a_build_that_does_not_fit_names_what_is_short(tmp_path):
    from openslb.sim.board_build import over_capacity
    log = tmp_path / "openslb.tim"
    log.write_text("Info: Device utilisation:\n"
                   "Info: \t          TRELLIS_IO:      30/    197    15%\n"
                   "Info: \t              DP16KD:      58/     56   103%\n"
                   "Info: \t        TRELLIS_COMB:   30669/  24288   126%\n"
                   "Info: \t          TRELLIS_FF:   20705/  24288    85%\n")
    assert over_capacity(log) == [("DP16KD", 58, 56), ("TRELLIS_COMB", 30669, 24288)]
    assert over_capacity(tmp_path / "missing.tim") == []


def test_a_failed_synthesis_names_its_error(tmp_path):
    from openslb.sim.board_build import _first_error
    (tmp_path / "openslb.rpt").write_text(
        "2.46.24.7. Executing ABC_OPS_REINTEGRATE pass\n"
        "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in rtlil.cc:3091.\n")
    assert _first_error(tmp_path) == (": openslb.rpt: ERROR: Assert `GetSize(conn.first) == "
                                      "GetSize(conn.second)' failed in rtlil.cc:3091.")
    assert _first_error(tmp_path / "nothing") == ""



def test_lut_mapper_work_around_maps_with_abc_between_synth_ecp5_steps():
    from openslb.hw.boards import yosys_overrides
    assert yosys_overrides(BOARDS["versa_ecp5"]) == {}
    over = yosys_overrides(BOARDS["colorlight_5a75b"])
    steps = over["script_after_synth"].splitlines()
    assert over["synth_opts"] == "-run :map_luts"
    assert steps.index("abc -lut 4 -dress") < steps.index("synth_ecp5 -run map_cells: -top openslb")
