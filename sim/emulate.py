"""``openslb emulate`` and ``make run``: the appliance emulator with a configuration, traffic
in from a pcap (or generated), what leaves each port out to pcaps, and a summary.

The emulated box is managed as a board is: the firmware programs it through its UART with the
serial register bridge (nothing is poked from the side).  ``--check`` carries the same frames
through the reference model programmed with the same writes and compares every output frame
and every counter.  ``--uart-pty`` then keeps the box running with its management UART on a
pseudo-terminal, for ``openslb cli --port /dev/pts/N``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from openslb.firmware.bus import ModelBus, SerialBus
from openslb.firmware.manager import Manager
from openslb.firmware.shell import run_script_config
from openslb.firmware.slb import SlbConfig, default_slb_config
from openslb.hw.spec import COUNTERS, EgressPort, Params
from openslb.model.device import DeviceModel
from openslb.sim.emulator import Emulator

__all__ = ["EmulationResult", "emulate", "main", "attach"]


@dataclass
class EmulationResult:
    outputs: list[tuple[EgressPort, bytes]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    reals: dict[int, tuple[int, int]] = field(default_factory=dict)
    cycles: int = 0
    wall_s: float = 0.0
    frames_in: int = 0
    mismatches: list[str] = field(default_factory=list)


def attach(emu: Emulator, slb: SlbConfig) -> Manager:
    """Bring the emulated box to ``slb`` through its UART (as ``openslb cli --port`` does)."""
    bus = SerialBus(emu.uart(max_wait_cycles=400_000), baud=115200, timeout_scale=1000,
                    min_timeout=60)
    manager = Manager(bus, None, slb)
    manager.program_applied()
    return manager


def load_config(path: str | None, params: Params) -> SlbConfig:
    if path is None:
        slb = default_slb_config()
        slb.params = params
        return slb
    return run_script_config(Path(path).read_text(), path, params)


def emulate(emu: Emulator, manager: Manager, frames: list[bytes], check: bool = False,
            batch: int = 2000, on_batch=None) -> EmulationResult:
    result = EmulationResult(frames_in=len(frames))
    model = None
    if check:
        model = DeviceModel(emu.params)
        Manager(ModelBus(model), None, manager.applied).program_applied()
    c0, t0 = emu.cycles, time.perf_counter()
    for k in range(0, len(frames), batch):
        chunk = frames[k:k + batch]
        result.outputs += emu.process(chunk)
        if on_batch is not None:
            on_batch(k + len(chunk))
    result.wall_s = time.perf_counter() - t0
    result.cycles = emu.cycles - c0
    result.counters = manager.counters()
    result.reals = {n: (s["packets"], s["bytes"])
                    for n, s in ((n, manager.real_stats(n)) for n in sorted(manager.applied.reals))}
    if model is not None:
        want = model.process(frames)
        if result.outputs != want.outputs:
            bad = next((i for i, (g, w) in enumerate(zip(result.outputs, want.outputs)) if g != w),
                       min(len(result.outputs), len(want.outputs)))
            result.mismatches.append(f"output frame {bad} differs from the model "
                                     f"({len(result.outputs)} out, model {len(want.outputs)})")
        for name in COUNTERS:
            if result.counters[name] != want.counters[name]:
                result.mismatches.append(f"counter {name}: emulator {result.counters[name]}, "
                                         f"model {want.counters[name]}")
    return result


def write_pcaps(stem: Path, outputs: list[tuple[EgressPort, bytes]]) -> list[Path]:
    """One pcap per egress port: ``<stem>.server.pcap``, ``.client.pcap``, ``.host.pcap``."""
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for port in EgressPort:
        path = stem.with_name(f"{stem.stem}.{port.name.lower()}.pcap")
        wrpcap(str(path), [Ether(f) for p, f in outputs if p == port], linktype=1)
        paths.append(path)
    return paths


def summary(console: Console, manager: Manager, result: EmulationResult, clock_hz: float) -> None:
    table = Table(title="per-real distribution (counted by the RTL, read over the UART)")
    for col in ("real", "address", "health", "packets", "bytes", "share"):
        table.add_column(col, justify="right" if col in ("packets", "bytes", "share") else "left")
    total = sum(p for p, _ in result.reals.values()) or 1
    for n, (packets, nbytes) in result.reals.items():
        r = manager.applied.reals[n]
        table.add_row(str(n), f"{r.rip} {r.mac}", manager.health_state(n), str(packets),
                      str(nbytes), f"{100 * packets / total:.1f}%")
    console.print(table)
    table = Table(title="counters and drops by reason")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name in COUNTERS:
        table.add_row(name, str(result.counters[name]))
    console.print(table)
    sim_s = result.cycles / clock_hz
    by_port = {p.name: sum(1 for q, _ in result.outputs if q == p) for p in EgressPort}
    console.print(f"{result.frames_in} frames in, {len(result.outputs)} out {by_port}; "
                  f"{result.cycles} cycles = {sim_s * 1e3:.3f} ms at {clock_hz / 1e6:g} MHz, "
                  f"emulated in {result.wall_s:.2f} s "
                  f"({result.frames_in / max(result.wall_s, 1e-9):,.0f} frames/s, "
                  f"{result.cycles / max(result.wall_s, 1e-9) / 1e6:.2f} M cycles/s)")


def serve_uart_pty(emu: Emulator, console: Console, stop=None) -> None:
    """Keep the box running with its management UART on a pseudo-terminal (until Ctrl-C, or
    until the ``stop`` event is set)."""
    import pty
    import select
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)
    console.print(f"management UART on [bold]{os.ttyname(slave)}[/]: "
                  f"openslb cli --port {os.ttyname(slave)}   (Ctrl-C stops)")
    uart = emu.uart()
    try:
        while stop is None or not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.005)
            if ready:
                uart.write(os.read(master, 4096))
            emu.lib.emu_run_uart(emu.handle, 20_000, 1 << 30)
            uart._collect()
            if uart.buf:
                os.write(master, bytes(uart.buf))
                uart.buf.clear()
    except KeyboardInterrupt:
        pass
    finally:
        os.close(master)
        os.close(slave)


def live_main(console: Console, requests: int = 600, fallback: bool = True) -> int | None:
    """``make run`` live; ``None`` when live mode cannot run here (the caller falls back), or
    1 with the reason when ``fallback`` is off."""
    from collections import Counter

    from openslb.sim.live import LiveError, can_go_live, run_live
    reason = can_go_live()
    if reason:
        if not fallback:
            console.print(f"error: {reason}")
            return 1
        console.print(f"[yellow]note:[/] {reason}; running the pcap mode instead")
        return None
    slb = default_slb_config()
    console.print("live mode: namespaces oslb-client and oslb-real1..4, DSR through the "
                  "emulated RTL; real 2 is stopped a third of the way in")
    try:
        result = run_live(console, slb, requests=requests)
    except LiveError as e:
        if not fallback:
            console.print(f"error: live mode failed: {e}")
            return 1
        console.print(f"[yellow]note:[/] live mode failed here ({e}); running the pcap mode instead")
        return None
    rows = result["rows"]
    ok = [r for r in rows if r["ok"]]
    per_real = Counter(r["real"] for r in ok)
    console.print(f"{len(ok)}/{len(rows)} requests answered; per real: "
                  + ", ".join(f"real {n}: {per_real.get(n, 0)}" for n in sorted(slb.reals)))
    for e in result["events"]:
        console.print(f"  {time.strftime('%H:%M:%S', time.localtime(e.when))} real {e.real} "
                      f"{'UP' if e.up else 'DOWN'}: {e.reason}")
    console.print("namespaces, TAP devices and servers removed")
    return 0 if ok and result["loop_error"] is None else 1


def main(pcap_in: str | None = None, pcap_out: str = "out/emulate.pcap", config: str | None = None,
         check: bool = False, width: int = 64, flows: int = 3000, seed: int = 1,
         uart_pty: bool = False, live: bool = False, clock_mhz: float = 156.25) -> int:
    from openslb.sim import traffic
    console = Console()
    if live:
        rc = live_main(console)
        if rc is not None:
            return rc
    params = Params(width=width)
    console.print(f"[bold]openslb[/] appliance emulator: {width}-bit core + UART bridge, "
                  "Verilator (the first run builds the model, about a minute)")
    emu = Emulator(params, clock_hz=clock_mhz * 1e6)
    slb = load_config(config, params)
    if check:
        # the model moves connection time only by CONN_TICK writes, not by clock cycles
        slb.conn.tick_cycles = 0
    t0 = time.perf_counter()
    manager = attach(emu, slb)
    console.print(f"configured over the emulated UART in {time.perf_counter() - t0:.1f} s "
                  f"({manager.bus.stats.bytes_out + manager.bus.stats.bytes_in} bytes on the line)")
    if pcap_in:
        from scapy.utils import rdpcap
        frames = [bytes(p) for p in rdpcap(pcap_in)]
        console.print(f"replaying {len(frames)} frames from {pcap_in}")
    else:
        frames = traffic.mixed_traffic(manager.applied.compile(), flows, seed)
        console.print(f"replaying {len(frames)} generated frames ({flows} client flows, ARP, "
                      "VLAN, options, fragments, IPv6, non-VIP and malformed frames)")
    progress = Table.grid()
    with Live(progress, console=console, transient=True) as live:
        def on_batch(done: int) -> None:
            stats = {n: manager.real_stats(n)["packets"] for n in sorted(manager.applied.reals)}
            live.update(f"{done}/{len(frames)} frames; per real: "
                        + ", ".join(f"{n}: {p}" for n, p in stats.items()))
        result = emulate(emu, manager, frames, check, on_batch=on_batch)
    summary(console, manager, result, emu.clock_hz)
    for path in write_pcaps(Path(pcap_out), result.outputs):
        console.print(f"wrote {path}")
    if check:
        if result.mismatches:
            for m in result.mismatches[:10]:
                console.print(f"[red]{m}[/]")
            return 1
        console.print("check: every output frame and counter matched the reference model")
    if uart_pty:
        serve_uart_pty(emu, console)
    return 0
