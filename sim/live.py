"""Live mode: the emulated appliance between real network namespaces, DSR and NAT end to end.

Topology (all names start with ``oslb-``; everything is created and removed by :class:`LiveNet`)::

    ns oslb-client                    root namespace                     ns oslb-realN (N = 1..4)
    10.0.0.2/24 on TAP oslb-c0 ◀═fd═▶ emulator ◀═fd═▶ TAP oslb-s0 ─┐
    10.0.0.3/24 (NAT client)                                         │
    10.0.1.2/24 on oslb-ret ─────────── bridge oslb-br (10.0.1.1) ──┴── eth0 10.0.1.1N, MAC of real N
                                                                        lo: VIP 10.0.0.100/32

The client reaches the VIP through the client-side TAP (the appliance answers ARP for the VIP
and forwards each flow to a real by rewriting the destination MAC).  Each real holds the VIP on
its loopback with ARP for it suppressed (``arp_ignore=1``, ``arp_announce=2``) and answers the
client directly over the bridge (``oslb-ret``), which is DSR's return path.  The health checker
runs in the root namespace and reaches the reals over the bridge.  Needs root.

NAT: the client's second address (``NAT_CLIENT_IP``) is routed back by the reals through the
appliance (``via`` its own IP, which it answers ARP for on the server side), so the answers to
a NAT service enter the emulated core from the server-side TAP, are reverse-NATed and reach the
client from the VIP, sent to the client's MAC (``CLIENT_MAC``, the NAT services' ``clntgw``).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from openslb.sim.emulator import Emulator

__all__ = ["LiveNet", "LiveError", "EmuLoop", "LoopUart", "can_go_live", "CLIENT_MAC",
           "NAT_CLIENT_IP"]

PREFIX = "oslb-"
CLIENT_NS = "oslb-client"
#: The client's MAC on its TAP (the next hop towards the clients for NAT: ``clntgw``).
CLIENT_MAC = "02:00:00:00:00:c0"
#: The client address whose traffic the reals route back through the appliance (NAT).
NAT_CLIENT_IP = "10.0.0.3"
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


class LiveError(RuntimeError):
    """Live mode cannot run here (the message says why, in one line)."""


def can_go_live() -> str | None:
    """``None`` if live mode can run, else the reason in one line."""
    if os.geteuid() != 0:
        return "live mode needs root (network namespaces and TAP devices)"
    if not shutil.which("ip"):
        return "live mode needs the 'ip' command (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "live mode needs /dev/net/tun"
    return None


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``ip ARGS`` (in namespace ``ns``); ``sysctl ...`` runs sysctl inside ``ns``."""
    if args[0] == "sysctl":
        cmd = ["ip", "netns", "exec", ns, *args]
    else:
        cmd = ["ip", *(["-n", ns] if ns else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode:
        raise LiveError(f"'{' '.join(cmd)}' failed: {result.stderr.strip()}")
    return result


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        raise LiveError(f"cannot create TAP device {name}: {e.strerror}") from None
    return fd


class LiveNet:
    """Creates the namespaces, TAPs, bridge and veths; :meth:`teardown` removes all of them."""

    def __init__(self, reals: dict[int, tuple[str, str]], vip: str = "10.0.0.100",
                 client_ip: str = "10.0.0.2", gateway: str = "10.0.0.1") -> None:
        self.reals = reals            # real → (rip, mac)
        self.vip = vip
        self.client_ip = client_ip
        self.gateway = gateway        # the appliance's own IP (the reals' route for NAT)
        self.tap_client = self.tap_server = -1
        self.processes: list[subprocess.Popen] = []

    @staticmethod
    def teardown_stale() -> None:
        """Remove whatever a killed earlier run left behind."""
        names = _ip("netns", "list", check=False).stdout.split()
        for name in names:
            if name.startswith(PREFIX):
                _ip("netns", "delete", name, check=False)
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            dev = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if dev.startswith(PREFIX):
                _ip("link", "delete", dev, check=False)

    def setup(self) -> None:
        self.teardown_stale()
        try:
            self._setup()
        except BaseException:
            self.teardown()
            raise

    def _setup(self) -> None:
        _ip("link", "add", "oslb-br", "type", "bridge")
        _ip("addr", "add", "10.0.1.1/24", "dev", "oslb-br")
        _ip("link", "set", "oslb-br", "up")
        # the appliance's two ports
        self.tap_server = open_tap("oslb-s0")
        _ip("link", "set", "oslb-s0", "master", "oslb-br")
        _ip("link", "set", "oslb-s0", "up")
        self.tap_client = open_tap("oslb-c0")
        _ip("netns", "add", CLIENT_NS)
        _ip("link", "set", "oslb-c0", "netns", CLIENT_NS)
        c = CLIENT_NS
        _ip("link", "set", "lo", "up", ns=c)
        _ip("link", "set", "oslb-c0", "address", CLIENT_MAC, ns=c)
        _ip("addr", "add", f"{self.client_ip}/24", "dev", "oslb-c0", ns=c)
        _ip("addr", "add", f"{NAT_CLIENT_IP}/24", "dev", "oslb-c0", ns=c)
        _ip("link", "set", "oslb-c0", "up", ns=c)
        # DSR return path: the reals answer the client over the bridge
        _ip("link", "add", "oslb-ret", "type", "veth", "peer", "name", "oslb-retb")
        _ip("link", "set", "oslb-retb", "master", "oslb-br")
        _ip("link", "set", "oslb-retb", "up")
        _ip("link", "set", "oslb-ret", "netns", c)
        _ip("addr", "add", "10.0.1.2/24", "dev", "oslb-ret", ns=c)
        _ip("link", "set", "oslb-ret", "up", ns=c)
        for key in ("all", "default", "oslb-ret", "oslb-c0"):
            _ip("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0", ns=c, check=False)
        for n, (rip, mac) in self.reals.items():
            ns, host = f"oslb-real{n}", f"oslb-r{n}"
            _ip("netns", "add", ns)
            _ip("link", "add", host, "type", "veth", "peer", "name", f"oslb-r{n}p")
            _ip("link", "set", host, "master", "oslb-br")
            _ip("link", "set", host, "up")
            _ip("link", "set", f"oslb-r{n}p", "netns", ns)
            _ip("link", "set", f"oslb-r{n}p", "name", "eth0", ns=ns)
            _ip("link", "set", "eth0", "address", mac, ns=ns)
            _ip("addr", "add", f"{rip}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
            _ip("addr", "add", f"{self.vip}/32", "dev", "lo", ns=ns)
            for key in ("all", "eth0"):
                _ip("sysctl", "-qw", f"net.ipv4.conf.{key}.arp_ignore=1", ns=ns)
                _ip("sysctl", "-qw", f"net.ipv4.conf.{key}.arp_announce=2", ns=ns)
            _ip("route", "add", f"{self.client_ip}/32", "via", "10.0.1.2", ns=ns)
            _ip("route", "add", f"{NAT_CLIENT_IP}/32", "via", self.gateway, "dev", "eth0",
                "onlink", ns=ns)

    def start_http_server(self, n: int, port: int = 80) -> subprocess.Popen:
        """An HTTP server in real ``n``'s namespace whose page names the real."""
        root = Path(f"/tmp/oslb-real{n}-www")
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text(f"real {n}\n")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", f"oslb-real{n}", sys.executable, "-m", "http.server",
             str(port), "--bind", "0.0.0.0", "--directory", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def client(self, script: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c", script],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(proc)
        return proc

    def teardown(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fd in (self.tap_client, self.tap_server):
            if fd >= 0:
                os.close(fd)
        self.tap_client = self.tap_server = -1
        self.teardown_stale()

    @staticmethod
    def leftovers() -> list[str]:
        """Namespaces and links of ours that still exist (for the tests)."""
        names = [n for n in _ip("netns", "list", check=False).stdout.split() if n.startswith(PREFIX)]
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            dev = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if dev.startswith(PREFIX):
                names.append(dev)
        return names


class _FdPort:
    """The master side of a pty with the pyserial calls the console uses."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, n: int = 1) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], 0.2)
        try:
            return os.read(self.fd, n) if ready else b""
        except OSError:          # closed at the end of the run
            time.sleep(0.2)
            return b""

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.fd, data)
        except OSError:
            return 0


class LoopUart:
    """The emulator's UART for a :class:`SerialBus` used from another thread than the loop."""

    def __init__(self) -> None:
        self.outgoing: queue.Queue[bytes] = queue.Queue()
        self.received = bytearray()
        self.cond = threading.Condition()
        self.timeout = 1.0

    def write(self, data: bytes) -> int:
        self.outgoing.put(bytes(data))
        return len(data)

    def read(self, n: int = 1) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: len(self.received) >= n, self.timeout)
            out = bytes(self.received[:n])
            del self.received[:n]
            return out

    def reset_input_buffer(self) -> None:
        time.sleep(0.01)
        with self.cond:
            self.received.clear()

    def deliver(self, data: bytes) -> None:
        with self.cond:
            self.received += data
            self.cond.notify_all()


class EmuLoop(threading.Thread):
    """Owns the emulator: frames from the TAPs in, frames out to the TAPs, UART bytes both ways."""

    def __init__(self, emu: Emulator, tap_client: int, tap_server: int, uart: LoopUart) -> None:
        super().__init__(daemon=True, name="emulator")
        self.emu, self.tap_client, self.tap_server, self.uart = emu, tap_client, tap_server, uart
        self.stop = threading.Event()
        self.frames_in = self.frames_out = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from openslb.hw.spec import EgressPort, IngressPort
        emu = self.emu
        ports = {EgressPort.CLIENT: self.tap_client, EgressPort.SERVER: self.tap_server}
        uart_buf = ctypes.create_string_buffer(4096)
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([self.tap_client, self.tap_server], [], [], 0.002)
                frames, in_ports = [], []
                for fd, port in ((self.tap_client, IngressPort.CLIENT),
                                 (self.tap_server, IngressPort.SERVER)):
                    if fd not in ready:
                        continue
                    while True:
                        try:
                            frames.append(os.read(fd, 65536))
                            in_ports.append(port)
                        except BlockingIOError:
                            break
                while True:
                    try:
                        data = self.uart.outgoing.get_nowait()
                    except queue.Empty:
                        break
                    emu.lib.emu_uart_write(emu.handle, data, len(data))
                if frames:
                    emu.push(frames, in_ports)
                    self.frames_in += len(frames)
                    emu.run(quiet=200)
                else:
                    emu.lib.emu_run_uart(emu.handle, 4000, 1 << 30)
                for port, frame in emu.pop_outputs():
                    fd = ports.get(port)
                    if fd is not None:
                        os.write(fd, frame)
                        self.frames_out += 1
                n = emu.lib.emu_uart_read(emu.handle, uart_buf, len(uart_buf))
                if n:
                    self.uart.deliver(uart_buf.raw[:n])
        except BaseException as e:   # reported by whoever joins the loop
            self.error = e


CLIENT_SCRIPT = r'''
import http.client, json, sys, threading, time
n, workers, vip, rate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
source = (sys.argv[5], 0) if len(sys.argv) > 5 and sys.argv[5] else None
lock = threading.Lock()
left = [n]
start = time.monotonic()
def worker():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
            k = n - left[0]
        if rate > 0:                      # paced: request k leaves at k / rate seconds
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection(vip, 80, timeout=2, source_address=source)
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
            conn.close()
            real, ok = int(body.split()[1]), response.status == 200
        except Exception as e:
            real, ok = None, False
        with lock:
            print(json.dumps({"t": time.monotonic(), "ok": ok, "real": real,
                              "ms": round(1000 * (time.monotonic() - t), 1)}), flush=True)
threads = [threading.Thread(target=worker) for _ in range(workers)]
for th in threads: th.start()
for th in threads: th.join()
'''


class LiveRun:
    """The live appliance: network, emulator loop, firmware over the UART, health checker."""

    def __init__(self, slb, health_interval: float | None = None) -> None:
        from openslb.firmware.bus import SerialBus
        from openslb.firmware.manager import Manager
        reason = can_go_live()
        if reason:
            raise LiveError(reason)
        self.slb = slb
        vip = next(v.vip for v in slb.virts.values())
        self.net = LiveNet({n: (r.rip, r.mac) for n, r in slb.reals.items()}, vip=vip,
                           gateway=slb.if_ip)
        self.vip = vip
        self.health_interval = health_interval
        self.emu = Emulator(slb.params)
        self.net.setup()
        try:
            self.uart = LoopUart()
            self.loop = EmuLoop(self.emu, self.net.tap_client, self.net.tap_server, self.uart)
            self.loop.start()
            bus = SerialBus(self.uart, baud=115200, timeout_scale=200, min_timeout=5)
            self.manager = Manager(bus, None, slb)
            self.manager.program_applied()
            self.servers = {n: self.net.start_http_server(n) for n in slb.reals}
            self._start_health()
        except BaseException:
            self.close()
            raise

    def _start_health(self) -> None:
        import asyncio

        from openslb.firmware.health import HealthChecker, specs_from_config
        specs = specs_from_config(self.manager.applied, timeout=0.5)
        if self.health_interval is not None:
            for s in specs.values():
                s.interval = self.health_interval
        self.checker = HealthChecker(specs, self.manager.set_up)
        self._health_stop = threading.Event()

        async def run():
            task = asyncio.create_task(self.checker.run())
            while not self._health_stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._health_thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
        self._health_thread.start()

    def serve_cli_console(self) -> str:
        """Serve the management CLI (same session as this run) on a pty; returns the path the
        operator opens (the other end of the pty is ours)."""
        import pty
        import tty

        from openslb.firmware.console import serve_console
        from openslb.firmware.shell import Shell
        master, slave = pty.openpty()
        tty.setraw(slave)
        self._console_fds = (master, slave)
        threading.Thread(target=serve_console, args=(Shell(self.manager), _FdPort(master)),
                         daemon=True, name="console").start()
        return os.ttyname(slave)

    def stop_real(self, n: int) -> None:
        """Stop real ``n``'s server (as if it crashed)."""
        proc = self.servers[n]
        proc.terminate()
        proc.wait(3)

    def load(self, requests: int, workers: int = 4, rate: float = 0, vip: str | None = None,
             source: str = "") -> subprocess.Popen:
        """HTTP clients in the client namespace (``rate`` requests/s, 0 = as fast as they
        go) to ``vip`` (default the first VIP), from ``source`` (default the client's first
        address; ``NAT_CLIENT_IP`` for a NAT service); one JSON line per request on stdout."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c", CLIENT_SCRIPT,
             str(requests), str(workers), vip or self.vip, str(rate), source],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.net.processes.append(proc)
        return proc

    def close(self) -> None:
        if hasattr(self, "_health_stop"):
            self._health_stop.set()
            self._health_thread.join(5)
        if hasattr(self, "loop"):
            self.loop.stop.set()
            self.loop.join(5)
        for fd in getattr(self, "_console_fds", ()):
            os.close(fd)
        self.net.teardown()


def run_live(console, slb, requests: int = 600, workers: int = 4, stop_real: int | None = 2,
             health_interval: float = 1.0, rate: float = 40.0) -> dict:
    """``make run`` in live mode: bounded HTTP load through the VIP, one real stopped halfway,
    per-real counters and health shown while it runs, then a summary.  Cleans up always."""
    import json
    import logging

    from rich.live import Live
    from rich.table import Table

    logging.getLogger("openslb.health").addHandler(logging.NullHandler())  # shown at the end
    logging.getLogger("openslb.health").propagate = False
    run = LiveRun(slb, health_interval=health_interval)
    rows: list[dict] = []
    stopped_at = None
    try:
        console_path = run.serve_cli_console()
        console.print(f"the CLI console of this box is on [bold]{console_path}[/] while it runs: "
                      f"python -m serial.tools.miniterm {console_path}  (password: admin)")
        time.sleep(2 * health_interval)                 # first health checks
        load = run.load(requests, workers, rate)

        def table() -> Table:
            t = Table(title=f"live: HTTP through VIP {run.vip} "
                            f"({len(rows)}/{requests} requests, "
                            f"{sum(not r['ok'] for r in rows)} failed)")
            for col in ("real", "health", "packets (RTL)", "responses"):
                t.add_column(col, justify="right")
            stats = {n: run.manager.real_stats(n)["packets"] for n in sorted(slb.reals)}
            for n in sorted(slb.reals):
                t.add_row(str(n), run.manager.health_state(n), str(stats[n]),
                          str(sum(1 for r in rows if r["real"] == n)))
            return t
        with Live(table(), console=console, refresh_per_second=4) as live:
            for line in iter(load.stdout.readline, ""):
                rows.append(json.loads(line))
                if stop_real is not None and stopped_at is None and len(rows) >= requests // 3:
                    run.stop_real(stop_real)
                    stopped_at = rows[-1]["t"]
                if len(rows) % 10 == 0:
                    live.update(table())
            load.wait()
            live.update(table())
        down_at = next((e.when for e in run.manager.events if not e.up), None)
        return {"rows": rows, "stopped_at": stopped_at, "events": list(run.manager.events),
                "down_event_wall": down_at, "loop_error": run.loop.error}
    finally:
        run.close()
