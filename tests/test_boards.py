"""Board tops: every one elaborates for its platform (no toolchain), the RGMII adapter maps
nibbles the way RGMII does, and one full build (the iCE40 bring-up top, the quickest) runs
through yosys, nextpnr and the packer from pip."""

import json
import warnings

import pytest
from amaranth.sim import Simulator

from openslb.hw.boards import BOARDS, board_top, platform_for
from openslb.hw.mac import RgmiiAdapter


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
