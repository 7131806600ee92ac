"""cocotb testbench of the appliance top (core + UART + register bridge).

``bridge`` scenario: requests — good, corrupted, truncated, repeated, malformed — sent bit by
bit into the UART; every response byte from the RTL is compared with the bridge model
(:class:`~openslb.model.bridge.BridgeModel` over a :class:`~openslb.model.device.DeviceModel`).

``cli`` scenario: the firmware's CLI runs in a thread and manages the simulated appliance through
its UART (the serial code path a board uses, with the simulated line as the transport); traffic
then follows the configuration, checked frame by frame against the reference model, and a real
taken out with ``/oper/slb/dis`` receives no new flows.
"""

from __future__ import annotations

import os
import queue
import random
import threading

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from openslb.firmware.bus import SerialBus, encode_request
from openslb.firmware.console import run_script, split_commands
from openslb.firmware.manager import Manager
from openslb.firmware.regs import address, pack_fields
from openslb.firmware.shell import Shell
from openslb.firmware.slb import default_slb_config
from openslb.hw.spec import ID_MAGIC, BridgeCmd, BridgeStatus
from openslb.model.bridge import BridgeModel, response_bytes
from openslb.model.device import DeviceModel
from openslb.model.pipeline import Appliance
from openslb.sim import traffic
from openslb.sim.tb_core import CLOCK_NS, CoreBench, _params, compare_frames

DIVISOR = int(os.environ.get("OPENSLB_UART_DIVISOR", "8"))


class Uart:
    def __init__(self, dut) -> None:
        self.dut = dut
        self.received = bytearray()
        self.lock = threading.Condition()

    async def send(self, data: bytes) -> None:
        for b in data:
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                self.dut.uart_rx.value = bit
                await ClockCycles(self.dut.clk, DIVISOR)

    async def monitor(self) -> None:
        dut = self.dut
        while True:
            await FallingEdge(dut.uart_tx)
            await ClockCycles(dut.clk, DIVISOR + DIVISOR // 2)
            b = 0
            for i in range(8):
                b |= int(dut.uart_tx.value) << i
                await ClockCycles(dut.clk, DIVISOR)
            with self.lock:
                self.received.append(b)
                self.lock.notify_all()

    async def quiet(self, byte_times: int) -> None:
        await ClockCycles(self.dut.clk, byte_times * 10 * DIVISOR)


async def _start(dut) -> Uart:
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.uart_rx.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    uart = Uart(dut)
    cocotb.start_soon(uart.monitor())
    return uart


async def bridge(dut) -> None:
    p = _params()
    uart = await _start(dut)
    model = BridgeModel(DeviceModel(p))
    rng = random.Random(1)
    entry = address("TABLE_ENTRY")
    good = [
        encode_request(1, BridgeCmd.READ, address("ID"), 2),
        encode_request(2, BridgeCmd.WRITE, address("VIP_IP", 0), 3, [0x0A000064, 7, 9]),
        encode_request(3, BridgeCmd.READ, address("VIP_IP", 0), 3),
        encode_request(4, BridgeCmd.WRITE_SAME, entry, 5, [pack_fields(
            "TABLE_ENTRY", p, real=r, index=k, group=1) for k, r in enumerate([3, 1, 4, 1, 5])]),
    ]
    cases = list(good)
    cases.append(good[3])                                          # repeated: REPEAT
    bad = bytearray(encode_request(5, BridgeCmd.WRITE, address("OWN_IP"), 1, [0xDEAD]))
    bad[8] ^= 0x10
    cases.append(bytes(bad))                                       # corrupted: BAD_CRC
    cases.append(encode_request(6, BridgeCmd.WRITE, address("OWN_IP"), 0))        # BAD_LEN
    cases.append(encode_request(7, 9, address("OWN_IP"), 1))                      # BAD_CMD
    cases.append(encode_request(8, BridgeCmd.READ, address("OWN_IP"), 129))       # BAD_LEN
    cases.append(bytes([0x00, 0x13, 0x37]) + encode_request(9, BridgeCmd.READ, 0x3FF, 1))
    for k in range(4):   # table read-back through the bridge
        cases.append(encode_request(10 + 2 * k, BridgeCmd.WRITE, address("TABLE_RADDR"), 1,
                                    [pack_fields("TABLE_RADDR", p, index=k, group=1,
                                                 bank=0)]))
        cases.append(encode_request(11 + 2 * k, BridgeCmd.READ, address("TABLE_RDATA"), 1))
    for n, request in enumerate(cases):
        start = len(uart.received)
        want = model.feed(request)
        await uart.send(request)
        await uart.quiet(len(want) + 6)
        got = bytes(uart.received[start:])
        assert got == want, f"request {n} ({request.hex()}): rtl {got.hex()}, model {want.hex()}"
    # truncated request: abandoned after the quiet time, the next one is served
    partial = encode_request(30, BridgeCmd.WRITE, address("OWN_IP"), 1, [0x0A0000FE])[:7]
    await uart.send(partial)
    await uart.quiet(6)
    model.feed(partial)
    model.timeout()
    request = encode_request(31, BridgeCmd.READ, address("OWN_IP"), 1)
    start = len(uart.received)
    want = model.feed(request)
    await uart.send(request)
    await uart.quiet(len(want) + 6)
    assert bytes(uart.received[start:]) == want, "request after a truncated one"
    # random garbage never hangs the bridge
    await uart.send(bytes(rng.randrange(256) for _ in range(40)))
    await uart.quiet(8)
    request = encode_request(32, BridgeCmd.READ, address("ID"), 1)
    start = len(uart.received)
    await uart.send(request)
    await uart.quiet(20)
    want = response_bytes(32, BridgeStatus.OK, [ID_MAGIC])
    assert bytes(uart.received[start:]).endswith(want), "the bridge hangs after garbage"


class SimLine:
    """The simulated UART as a byte transport for the firmware's SerialBus (thread side)."""

    def __init__(self, uart: Uart) -> None:
        self.uart = uart
        self.outgoing: queue.Queue[bytes] = queue.Queue()
        self.pos = 0
        self.timeout = 1.0

    def write(self, data: bytes) -> int:
        self.outgoing.put(bytes(data))
        return len(data)

    def read(self, n: int = 1) -> bytes:
        with self.uart.lock:
            self.uart.lock.wait_for(lambda: len(self.uart.received) > self.pos, self.timeout)
            out = bytes(self.uart.received[self.pos:self.pos + n])
            self.pos += len(out)
            return out

    def reset_input_buffer(self) -> None:
        with self.uart.lock:
            self.pos = len(self.uart.received)

    async def pump(self) -> None:
        while True:
            try:
                data = self.outgoing.get_nowait()
            except queue.Empty:
                await ClockCycles(self.uart.dut.clk, 20)
                continue
            await self.uart.send(data)


async def _in_thread(dut, fn):
    """Run blocking firmware code in a thread while the simulation keeps running."""
    result: dict = {}

    def body():
        try:
            result["value"] = fn()
        except BaseException as e:  # handed back to the test
            result["error"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    while t.is_alive():
        await ClockCycles(dut.clk, 500)
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def attach_firmware(dut, uart: Uart, params) -> Manager:
    """The firmware, in a thread, brings the box to the built-in configuration (with a small
    Maglev table, so the upload is quick at simulation speed) over the simulated UART."""
    line = SimLine(uart)
    cocotb.start_soon(line.pump())
    slb = default_slb_config()
    slb.table_size = 251
    slb.params = params

    def attach():
        bus = SerialBus(line, baud=115200, timeout_scale=400, min_timeout=20, retries=2)
        manager = Manager(bus, None, slb)
        manager.program_applied()
        return manager
    return await _in_thread(dut, attach)


async def cli(dut) -> None:
    p = _params()
    uart = await _start(dut)
    manager = await attach_firmware(dut, uart, p)
    shell = Shell(manager)
    script = ("/cfg/slb/real 5/rip 10.0.1.15; /cfg/slb/real 5/mac 02:00:00:00:01:05; "
              "/cfg/slb/real 5/weight 2; /cfg/slb/group 1/add 5; /cfg/slb/real 1/dis; apply")
    rc = await _in_thread(dut, lambda: run_script(shell, split_commands(script), "-c"))
    assert rc == 0, "the CLI script failed"

    tb = CoreBench(dut, p, 1)
    tb.backpressure = 0.2
    cocotb.start_soon(tb.monitor())
    cfg = manager.applied.compile()
    model = Appliance(cfg)
    frames = traffic.client_flows(cfg, 150, random.Random(5))
    want = model.process(frames)
    await tb.drive(frames, 0.2)
    await tb.wait_outputs(len(want.outputs), 200_000)
    problems = compare_frames(tb.outputs, want.outputs) + tb.errors
    assert not problems, "; ".join(problems[:5])
    used = {d.real for d in want.decisions if d.real is not None}
    assert used == {2, 3, 4, 5}, f"traffic went to reals {used}"

    # a real taken out by the operator gets no new flows, at once
    rc = await _in_thread(dut, lambda: run_script(shell, ["/oper/slb/dis 3"], "-c"))
    assert rc == 0
    model = Appliance(manager.applied.compile(oper_disabled=frozenset({3})))
    start = len(tb.outputs)
    frames = traffic.client_flows(cfg, 150, random.Random(6))
    want = model.process(frames)
    await tb.drive(frames, 0.2)
    await tb.wait_outputs(start + len(want.outputs), 200_000)
    problems = compare_frames(tb.outputs[start:], want.outputs) + tb.errors
    assert not problems, "; ".join(problems[:5])
    assert 3 not in {d.real for d in want.decisions}
    counters = await _in_thread(dut, manager.counters)
    assert counters["TX_SERVER"] == sum(1 for port, _ in tb.outputs if port.name == "SERVER")


SCENARIOS = {"bridge": bridge, "cli": cli}


@cocotb.test()
async def scenario(dut) -> None:
    await SCENARIOS[os.environ.get("OPENSLB_SCENARIO", "bridge")](dut)
