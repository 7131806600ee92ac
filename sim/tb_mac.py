"""cocotb testbench of one Ethernet port (:class:`openslb.hw.mac.EthPort`): GMII at 125 MHz in
the ``eth_rx`` / ``eth_tx`` domains, core beats at 156.25 MHz, compared with
:mod:`openslb.model.mac`.

Receive: good frames of every size, bad FCS, runts, oversize frames and ``rx_er`` in random
order with random gaps, the core side under random backpressure; every forwarded frame and
every counter must match the model.  Transmit: frames of every size from the core side; on the
wire each must be preamble + SFD + the frame padded to 60 bytes + a correct FCS, with at least
12 idle byte times between frames.

Scenario ``mac`` runs GMII at a byte per cycle (1 Gb/s).  Scenario ``mac-half`` runs it as at
10/100 Mb/s behind the RGMII adapter: a byte every other cycle, marked by ``rx_ce``/``tx_ce``
(the testbench toggles both); each transmitted byte must then hold for its two cycles.
"""

from __future__ import annotations

import ast
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from openslb.hw.mac import IFG_BYTES, MAC_COUNTERS
from openslb.hw.spec import Params
from openslb.model import mac as model
from openslb.sim.tb_core import CoreBench


def _params() -> Params:
    return Params(**ast.literal_eval(os.environ.get("OPENSLB_PARAMS", "{}")))


class PortBench(CoreBench):
    """CoreBench's stream drivers, plus GMII on both sides."""

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, 6.4, unit="ns").start()
        Clock(dut.eth_rx_clk, 8, unit="ns").start()
        Clock(dut.eth_tx_clk, 8, unit="ns").start()
        dut.rst.value = dut.eth_rx_rst.value = dut.eth_tx_rst.value = 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        dut.rx_dv.value = dut.rx_er.value = 0
        dut.rxd.value = 0
        dut.rx_ce.value = dut.tx_ce.value = 1      # 1 Gb/s: every cycle carries a byte
        for _ in range(4):
            await RisingEdge(dut.eth_rx_clk)
        dut.rst.value = dut.eth_rx_rst.value = dut.eth_tx_rst.value = 0
        if self.every == 2:
            cocotb.start_soon(self._toggle_tx_ce())

    #: cycles per byte: 1 (1 Gb/s) or 2 (10/100 Mb/s behind the RGMII adapter)
    every = 2 if os.environ.get("OPENSLB_SCENARIO") == "mac-half" else 1

    async def _toggle_tx_ce(self) -> None:
        while True:
            await FallingEdge(self.dut.eth_tx_clk)
            self.dut.tx_ce.value = 1 - int(self.dut.tx_ce.value)

    async def gmii_send(self, bursts: list[tuple[bytes, int | None]]) -> None:
        dut = self.dut
        for burst, error_at in bursts:
            for k, b in enumerate(burst):
                for ce in (0, 1)[2 - self.every:]:     # the byte's cycles; rx_ce on its last
                    await FallingEdge(dut.eth_rx_clk)
                    dut.rx_dv.value = 1
                    dut.rxd.value = b
                    dut.rx_er.value = int(k == error_at)
                    dut.rx_ce.value = ce
            for _ in range(IFG_BYTES + self.rng.randrange(8)):
                await FallingEdge(dut.eth_rx_clk)
                dut.rx_dv.value = 0
                dut.rx_er.value = 0
                dut.rx_ce.value = 1

    async def gmii_monitor(self, sink: list[tuple[int, bytes]]) -> None:
        """Each transmitted burst with the idle cycles before it."""
        dut = self.dut
        burst, idle = bytearray(), 0
        while True:
            await RisingEdge(dut.eth_tx_clk)
            await ReadOnly()
            if dut.tx_en.value:
                burst.append(int(dut.txd.value))
            else:
                if burst:
                    if self.every == 2:     # each byte held for its two cycles
                        assert len(burst) % 2 == 0 and burst[0::2] == burst[1::2], \
                            f"a byte not held for two cycles: {burst[:16].hex()}..."
                        burst, idle = burst[0::2], idle // 2
                    sink.append((idle, bytes(burst)))
                    burst, idle = bytearray(), 0
                idle += 1


def _frames(rng: random.Random, n: int) -> list[bytes]:
    sizes = [14, 20, 42, 59, 60, 61, 64, 100, 512, 1514, 1518] + [rng.randrange(14, 1515) for _ in range(n)]
    return [rng.randbytes(s) for s in sizes]


def _rx_bursts(rng: random.Random, frames: list[bytes], max_frame: int) -> list:
    bursts = []
    for f in frames:
        wire = model.on_wire(f)
        kind = rng.random()
        if kind < 0.1:                                   # bad FCS
            wire = wire[:-1] + bytes([wire[-1] ^ 0x01])
        elif kind < 0.15:                                # runt: no padding
            body = f[:rng.randrange(1, 59)]
            wire = model.PREAMBLE_SFD + body + model.fcs(body)
        elif kind < 0.2:                                 # rx_er somewhere in the frame
            bursts.append((wire, rng.randrange(9, len(wire))))
            continue
        bursts.append((wire, None))
    big = rng.randbytes(max_frame + 1)                   # oversize, with a good FCS
    bursts.insert(len(bursts) // 2, (model.PREAMBLE_SFD + big + model.fcs(big), None))
    return bursts


@cocotb.test()
async def receive_and_transmit(dut) -> None:
    p = _params()
    rng = random.Random(int(os.environ.get("OPENSLB_SEED", "1")))
    tb = PortBench(dut, p, 1)
    await tb.start()
    cocotb.start_soon(tb.monitor())

    # ---- receive ------------------------------------------------------------------------
    bursts = _rx_bursts(rng, _frames(rng, 60), p.max_frame)
    want, counts = model.receive(bursts, p.max_frame)
    await tb.gmii_send(bursts)
    await tb.wait_outputs(len(want), 200_000)
    got = [f for _, f in tb.outputs]
    assert len(got) == len(want), f"{len(got)} frames forwarded, model {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"frame {k}: {g[:32].hex()}... != {w[:32].hex()}..."
    for name in MAC_COUNTERS:
        assert int(getattr(dut, name).value) == counts.get(name, 0), \
            f"{name}: rtl {int(getattr(dut, name).value)}, model {counts.get(name, 0)}"

    # ---- transmit -----------------------------------------------------------------------
    wire: list[tuple[int, bytes]] = []
    cocotb.start_soon(tb.gmii_monitor(wire))
    frames = _frames(rng, 30)
    await tb.drive(frames, 0.3)
    for _ in range(200_000):
        if len(wire) >= len(frames):
            break
        await RisingEdge(dut.eth_tx_clk)
    assert len(wire) == len(frames), f"{len(wire)} frames on the wire, {len(frames)} sent"
    for k, ((idle, burst), f) in enumerate(zip(wire, frames)):
        assert burst == model.on_wire(f), f"frame {k} on the wire: {burst[:24].hex()}..."
        if k:
            assert idle >= IFG_BYTES, f"frame {k}: inter-frame gap {idle} < {IFG_BYTES}"
    assert int(dut.tx_frames.value) == len(frames)
    dut._log.info("rx %d frames forwarded, counters %s; tx %d frames", len(want), dict(counts),
                  len(frames))
