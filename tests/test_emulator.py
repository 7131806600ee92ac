"""The Verilator emulator of the whole appliance (core + UART bridge), managed over its UART."""

import os
import random
import threading
import time

import pytest

from openslb.firmware.bus import ModelBus, open_serial
from openslb.firmware.manager import Manager
from openslb.firmware.regs import address
from openslb.model.config import ip_int
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
    # the probe leaves the staged OWN_IP as it found it (a later COMMIT would apply it)
    assert box[1].bus.read(address("OWN_IP")) == ip_int(box[1].applied.if_ip)


def _flush_connections(manager) -> None:
    from openslb.firmware.regs import address
    manager.bus.write(address("CONN_FLUSH"), 1)
    for _ in range(100):
        if not manager.bus.read(address("CONN_STATUS")) & 1:
            return
    raise AssertionError("the flush never finished")


def test_nat_and_reverse_nat_through_the_emulator(box):
    """NAT services applied over the UART; client flows and the reals' answers from the server
    side through the emulated RTL, frame by frame against a model twin, checksums verified."""
    import copy
    from openslb.firmware.slb import Service
    emu, manager = box
    pending = manager.pending
    pending.client_gw_mac = traffic.GW_MAC
    web = pending.virts[1].services[(80, "tcp")]
    web.mode, web.rport = "nat", 8080
    pending.virts[1].services[(None, "udp")] = Service(None, "udp", group=1, mode="nat")
    try:
        manager.apply()
        _flush_connections(manager)
        twin = DeviceModel(emu.params)
        Manager(ModelBus(twin), None, manager.applied).program_applied()
        frames, ports = traffic.nat_traffic(manager.applied.compile(), 300, 6,
                                            copy.deepcopy(twin.appliance))
        got = emu.process(frames, ports=ports)
        want = twin.process(frames, ports)
        assert got == want.outputs
        assert want.counters["TX_RNAT"] > 100
        assert all(traffic.checksums_ok(f) for port, f in got if port.name == "CLIENT"
                   and f[12:14] == b"\x08\x00")
    finally:
        manager.pending = default_slb_config()
        manager.apply()


def test_metrics_and_maxcon_through_the_emulator(box):
    """Weighted leastconns and connection limits applied over the UART: client flows through
    the emulated RTL against a model twin frame by frame, and every real's connection count
    (REAL_CONNS, read over the UART) against the twin's (roundrobin: the cocotb testbench)."""
    emu, manager = box
    pending = manager.pending
    pending.groups[1].metric = "leastconns"
    pending.reals[4].weight = 3
    pending.reals[2].maxcon = 15
    try:
        manager.apply()
        _flush_connections(manager)
        twin = DeviceModel(emu.params)
        Manager(ModelBus(twin), None, manager.applied).program_applied()
        frames = traffic.client_flows(manager.applied.compile(), 400, random.Random(8))
        got = emu.process(frames)
        want = twin.process(frames)
        assert got == want.outputs
        assert want.counters["CONN_NEW"] > 300
        model = twin.appliance
        assert model.full(2)
        for real in (1, 2, 3, 4):
            assert manager.real_stats(real)["conns"] == model.conn.conns(real)
            assert manager.real_stats(real)["full"] == model.full(real)
    finally:
        manager.pending = default_slb_config()
        manager.apply()


def test_connections_keep_their_real_while_the_pool_changes(box):
    """2000 open connections through the emulated RTL while reals are added, re-weighted,
    drained and removed by applies over the UART: none changes real; new ones follow the pool."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from openslb.firmware.slb import Real
    emu, manager = box
    cfg = manager.applied.compile()
    vip = cfg.virts[0].vip

    def frames(conns, flags):
        return [bytes(Ether(dst=cfg.own_mac) / IP(src=src, dst=vip)
                      / TCP(sport=sport, dport=80, flags=flags)) for src, sport in conns]

    def reals(out):
        return [f[:6] for port, f in out if port.name == "SERVER"]

    # start from an empty table, like the model twin below (earlier tests left entries)
    _flush_connections(manager)
    conns = [(f"172.20.{k // 250}.{k % 250 + 1}", 20000 + k) for k in range(2000)]
    emu.process(frames(conns, "S"))
    established = reals(emu.process(frames(conns, "A")))
    assert len(established) == len(conns)
    # which connections the table holds (a few buckets overflow: those are counted CONN_FULL
    # and follow the table), from the model, which the emulator matches frame by frame
    twin = DeviceModel(emu.params)
    Manager(ModelBus(twin), None, manager.applied).program_applied()
    twin.process(frames(conns, "S"))
    held = []
    for k, f in enumerate(frames(conns, "A")):
        hits = twin.appliance.counters["CONN_HIT"]
        twin.appliance.decide(f)
        if twin.appliance.counters["CONN_HIT"] > hits:
            held.append(k)
    assert len(held) > 0.95 * len(conns)
    pending = manager.pending
    steps = [lambda: (pending.reals.__setitem__(5, Real(5, rip="10.0.1.15", mac="02:00:00:00:01:05")),
                      pending.groups[1].reals.append(5)),
             lambda: setattr(pending.reals[3], "weight", 6),
             lambda: setattr(pending.reals[2], "enabled", False),          # drain
             lambda: pending.groups[1].reals.remove(4)]                    # removal
    try:
        for step in steps:
            step()
            manager.apply()
            now = reals(emu.process(frames(conns, "PA")))
            moved = [k for k in held if now[k] != established[k]]
            assert not moved, f"{len(moved)} established connections changed real"
        fresh = reals(emu.process(frames([(f"172.21.{k // 250}.{k % 250 + 1}", 30000 + k)
                                          for k in range(500)], "S")))
        assert bytes.fromhex("020000000102") not in fresh      # drained: no new connection
        assert bytes.fromhex("020000000104") not in fresh      # removed from the group
        assert bytes.fromhex("020000000105") in fresh          # added
    finally:
        manager.pending = default_slb_config()
        manager.apply()
