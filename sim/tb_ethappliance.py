"""cocotb testbench of the appliance with its two Ethernet MACs, configured over its UART by
the firmware: frames in on the client side, out on the server side (and ARP replies back out of
the client side), while the reals ask for the appliance's address on the server side and get
their replies there, compared with the reference model; a frame with a bad FCS is dropped and
counted in MAC_STAT.

Scenario ``macs``: :class:`~openslb.hw.appliance.EthAppliance` (the common part of every board
top) at its GMII ports.  Scenario ``rgmii``: :class:`~openslb.sim.rgmii_top.RgmiiSimTop`, the
same behind RGMII pins with DDR buffers, driven nibble by nibble on both clock edges at 1 Gb/s
(125 MHz).  Scenario ``rgmii100``: the same top at 100 Mb/s: the PHYs' clocks run at 25 MHz,
each cycle carries one nibble on both edges; the appliance tells the speed from the clock
(:class:`~openslb.hw.linkspeed.LinkSpeedMeter`) before any frame is sent, and its transmitters
must send nibbles the same way.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

from openslb.firmware.regs import address
from openslb.hw.mac import IFG_BYTES, MAC_COUNTERS
from openslb.hw.spec import EgressPort, IngressPort
from openslb.model import mac as mac_model
from openslb.model.pipeline import Appliance
from openslb.sim import traffic
from openslb.sim.tb_appliance import Uart, _in_thread, attach_firmware
from openslb.sim.tb_core import CLOCK_NS, _params


async def _gmii_send(dut, k: int, bursts: list[bytes]) -> None:
    clk = getattr(dut, f"eth{k}_rx_clk")
    for burst in bursts:
        for b in burst:
            await FallingEdge(clk)
            getattr(dut, f"eth{k}_rx_dv").value = 1
            getattr(dut, f"eth{k}_rxd").value = b
        for _ in range(IFG_BYTES):
            await FallingEdge(clk)
            getattr(dut, f"eth{k}_rx_dv").value = 0


async def _gmii_monitor(dut, k: int, sink: list[bytes]) -> None:
    clk = getattr(dut, f"eth{k}_tx_clk")
    en, data = getattr(dut, f"eth{k}_tx_en"), getattr(dut, f"eth{k}_txd")
    burst = bytearray()
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        if en.value:
            burst.append(int(data.value))
        elif burst:
            sink.append(bytes(burst))
            burst = bytearray()


async def _rgmii_send(dut, k: int, bursts: list[bytes]) -> None:
    """RGMII: low nibble and DV at the rising edge, high nibble and DV xor ER at the falling."""
    clk, ctl, data = (getattr(dut, f"rgmii{k}_{n}") for n in ("rx_clk", "rx_ctl", "rxd"))
    for burst in bursts:
        for b in burst:
            await FallingEdge(clk)
            ctl.value, data.value = 1, b & 0xF
            await RisingEdge(clk)
            ctl.value, data.value = 1, b >> 4
        for _ in range(IFG_BYTES):
            await FallingEdge(clk)
            ctl.value = 0
            await RisingEdge(clk)
            ctl.value = 0


async def _rgmii_monitor(dut, k: int, sink: list[bytes]) -> None:
    clk, ctl, data = (getattr(dut, f"rgmii{k}_{n}") for n in ("tx_clk", "tx_ctl", "txd"))
    burst = bytearray()
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        en, low = int(ctl.value), int(data.value)
        await FallingEdge(clk)
        await ReadOnly()
        if en:
            burst.append(low | int(data.value) << 4)
        elif burst:
            sink.append(bytes(burst))
            burst = bytearray()


async def _rgmii100_send(dut, k: int, bursts: list[bytes]) -> None:
    """RGMII at 10/100 Mb/s: a nibble per cycle, low nibble first, the same on both edges."""
    clk, ctl, data = (getattr(dut, f"rgmii{k}_{n}") for n in ("rx_clk", "rx_ctl", "rxd"))
    for burst in bursts:
        for nibble in [n for b in burst for n in (b & 0xF, b >> 4)]:
            await FallingEdge(clk)
            ctl.value, data.value = 1, nibble      # held through the next falling edge
        for _ in range(2 * IFG_BYTES):
            await FallingEdge(clk)
            ctl.value = 0


async def _rgmii100_monitor(dut, k: int, sink: list[bytes]) -> None:
    clk, ctl, data = (getattr(dut, f"rgmii{k}_{n}") for n in ("tx_clk", "tx_ctl", "txd"))
    nibbles = []
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        rise = int(ctl.value), int(data.value)
        await FallingEdge(clk)
        await ReadOnly()
        assert (int(ctl.value), int(data.value)) == rise, f"port {k}: the edges differ at 100 Mb/s"
        if rise[0]:
            nibbles.append(rise[1])
        elif nibbles:
            assert len(nibbles) % 2 == 0, f"port {k}: a burst of {len(nibbles)} nibbles"
            sink.append(bytes(lo | hi << 4 for lo, hi in zip(nibbles[0::2], nibbles[1::2])))
            nibbles = []


async def _start_gmii(dut):
    for k in range(2):
        for d in ("rx", "tx"):
            Clock(getattr(dut, f"eth{k}_{d}_clk"), 8, unit="ns").start()
    resets = [dut.rst] + [getattr(dut, f"eth{k}_{d}_rst") for k in range(2) for d in ("rx", "tx")]
    for k in range(2):
        getattr(dut, f"eth{k}_rx_dv").value = 0
        getattr(dut, f"eth{k}_rx_er").value = 0
        # 1 Gb/s GMII: every cycle carries a byte (a board's RGMII adapter drives these)
        getattr(dut, f"eth{k}_rx_ce").value = 1
        getattr(dut, f"eth{k}_tx_ce").value = 1
    return resets, dut.eth0_rx_clk, _gmii_send, _gmii_monitor


async def _start_rgmii(dut, ns: int = 8):
    for k in range(2):
        Clock(getattr(dut, f"rgmii{k}_rx_clk"), ns, unit="ns").start()
        getattr(dut, f"rgmii{k}_rx_ctl").value = 0
    return [dut.rst], dut.rgmii0_rx_clk, _rgmii_send, _rgmii_monitor


async def _start_rgmii100(dut):
    resets, clk, _, _ = await _start_rgmii(dut, 40)
    return resets, clk, _rgmii100_send, _rgmii100_monitor


STARTS = {"macs": _start_gmii, "rgmii": _start_rgmii, "rgmii100": _start_rgmii100}


@cocotb.test()
async def frames_through_the_macs(dut) -> None:
    p = _params()
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    scenario = os.environ.get("OPENSLB_SCENARIO", "macs")
    resets, eth_clk, send, monitor = await STARTS[scenario](dut)
    for r in resets:
        r.value = 1
    dut.uart_rx.value = 1
    await ClockCycles(eth_clk, 4)
    for r in resets:
        r.value = 0
    uart = Uart(dut)
    cocotb.start_soon(uart.monitor())
    manager = await attach_firmware(dut, uart, p)
    cfg = manager.applied.compile()
    # the link speed is measured over 128 us windows: two of them before the first frame
    await Timer(2 * 128, unit="us")

    rng = random.Random(3)
    frames = traffic.client_flows(cfg, 40, rng) + [traffic.arp_request(cfg, "10.0.0.100")]
    rng.shuffle(frames)
    want = Appliance(cfg).process(frames)
    # the reals' ARP requests for their gateway, on the server side at the same time
    server_arp = [traffic.arp_request(cfg, cfg.own_ip, sender=f"10.0.1.{11 + k}") for k in range(3)]
    server_want = [Appliance(cfg).decide(f, IngressPort.SERVER).frame for f in server_arp]
    bad = mac_model.on_wire(frames[0])
    bad = bad[:-1] + bytes([bad[-1] ^ 0x80])
    out = {0: [], 1: []}
    for k in (0, 1):
        cocotb.start_soon(monitor(dut, k, out[k]))
    server_side = cocotb.start_soon(send(dut, 1, [mac_model.on_wire(f) for f in server_arp]))
    await send(dut, 0, [bad] + [mac_model.on_wire(f) for f in frames])
    await server_side
    server_frames = [f for port, f in want.outputs if port == EgressPort.SERVER]
    expect = {0: [f for port, f in want.outputs if port == EgressPort.CLIENT],
              1: server_frames + server_want}
    for _ in range(400):
        if all(len(out[k]) >= len(expect[k]) for k in (0, 1)):
            break
        await ClockCycles(dut.clk, 500)
    # (port 1 carries the client flows and the ARP replies to the reals interleaved as the
    # merge took them: each kind in its own order)
    replies = [b for b in out[1] if b[8 + 12:8 + 14] == b"\x08\x06"]
    out[1] = [b for b in out[1] if b[8 + 12:8 + 14] != b"\x08\x06"] + replies
    for k in (0, 1):
        assert len(out[k]) == len(expect[k]), f"port {k}: {len(out[k])} frames, model {len(expect[k])}"
        for n, (burst, frame) in enumerate(zip(out[k], expect[k])):
            assert burst == mac_model.on_wire(frame), f"port {k} frame {n} differs"

    def read_stats():
        return manager.bus.read_many(address("MAC_STAT"), 2 * len(MAC_COUNTERS))
    words = await _in_thread(dut, read_stats)
    stats = dict(zip(MAC_COUNTERS, words))
    server_stats = dict(zip(MAC_COUNTERS, words[len(MAC_COUNTERS):]))
    assert stats["rx_bad_fcs"] == 1 and stats["rx_ok"] == len(frames), stats
    assert server_stats["rx_ok"] == len(server_arp), server_stats
    dut._log.info("port 0: %d frames in, %d ARP replies out; port 1: %d frames out; %s",
                  len(frames), len(out[0]), len(out[1]), stats)
