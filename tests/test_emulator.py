"""The Verilator emulator of the whole appliance (core + UART bridge), managed over its UART."""

import os
import random
import threading
import time

import pytest

from openslb.firmware.bus import ModelBus, open_serial
from openslb.firmware.manager import Manager
from openslb.firmware.slb import default_slb_config
from openslb.model.device import DeviceModel
from openslb.sim import traffic
from openslb.sim.emulate import attach, emulate, serve_uart_pty, write_pcaps
from openslb.sim.emulator import Emulator
from openslb.sim.fuzz import fuzz_frames


@pytest.fixture(scope="module")
def box():
    emu = Emulator()
    return emu, attach(emu, default_slb_config())


def test_emulator_matches_the_model_frame_by_frame(box):
    emu, manager = box
    cfg = manager.applied.compile()
    frames = traffic.mixed_traffic(cfg, 800, 4) + traffic.hostile_frames(cfg, random.Random(4), 200)
    result = emulate(emu, manager, frames, check=True)
    assert not result.mismatches, result.mismatches
    assert result.counters["RX_FRAMES"] >= len(frames)


def test_backpressure_and_fuzz_lose_nothing(box):
    emu, manager = box
    model = DeviceModel(emu.params)
    Manager(ModelBus(model), None, manager.applied).program_applied()
    base = traffic.mixed_traffic(manager.applied.compile(), 100, 9)
    frames = fuzz_frames(5000, random.Random(9), base, emu.params.max_frame)
    emu.backpressure(0x5A5A0F0F)
    try:
        got = emu.process(frames)
    finally:
        emu.backpressure(0)
    assert got == model.process(frames).outputs


def test_operator_drain_over_the_uart(box):
    emu, manager = box
    manager.oper(2, enable=False)
    try:
        frames = traffic.client_flows(manager.applied.compile(), 300, random.Random(2))
        out = emu.process(frames)
        macs = {f[:6] for port, f in out if port.name == "SERVER"}
        assert bytes.fromhex("020000000102") not in macs and len(macs) == 3
    finally:
        manager.oper(2, enable=True)


def test_cli_attaches_to_the_uart_pty(box, tmp_path):
    from rich.console import Console
    emu, _ = box
    console = Console(file=open(tmp_path / "log.txt", "w"))
    stop = threading.Event()
    t = threading.Thread(target=serve_uart_pty, args=(emu, console, stop), daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    text = ""
    while "/dev/pts/" not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        console.file.flush()
        text = (tmp_path / "log.txt").read_text()
    path = text.split("openslb cli --port ")[1].split()[0]
    bus = open_serial(path, timeout_scale=50, min_timeout=5)
    manager = Manager(bus, None, default_slb_config())
    try:
        assert manager.regs.read("ACTIVE_BANK") in (0, 1)
        assert manager.counters()["RX_FRAMES"] > 0
    finally:
        stop.set()
        t.join(10)


def test_pcaps_per_port(tmp_path, box):
    from scapy.utils import rdpcap
    emu, manager = box
    frames = traffic.mixed_traffic(manager.applied.compile(), 50, 1)
    result = emulate(emu, manager, frames)
    paths = write_pcaps(tmp_path / "out.pcap", result.outputs)
    assert [p.name for p in paths] == ["out.client.pcap", "out.server.pcap", "out.host.pcap"]
    assert sum(len(rdpcap(str(p))) for p in paths) == len(result.outputs)


def test_live_refuses_without_root_in_one_line(monkeypatch, capsys):
    from openslb.cli import main
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["live"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: live mode needs root (network namespaces and TAP devices)"


def test_probe_over_the_emulated_uart_pty(box, tmp_path, capsys):
    from rich.console import Console

    from openslb.cli import main
    emu, _ = box
    console = Console(file=open(tmp_path / "log.txt", "w"))
    stop = threading.Event()
    t = threading.Thread(target=serve_uart_pty, args=(emu, console, stop), daemon=True)
    t.start()
    try:
        deadline, text = time.monotonic() + 5, ""
        while "/dev/pts/" not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            console.file.flush()
            text = (tmp_path / "log.txt").read_text()
        path = text.split("openslb cli --port ")[1].split()[0]
        assert main(["probe", "--port", path, "--words", "4"]) == 0
    finally:
        stop.set()
        t.join(10)
    out = capsys.readouterr().out
    assert "width 64" in out and "4 write/read-back pairs correct" in out
