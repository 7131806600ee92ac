"""Health checking of real servers: asyncio checks, Alteon-style counting, anti-flap hold-down.

Each real is checked every ``interval`` seconds (default 2) with its group's check: ``icmp``
(echo), ``tcp`` (connect), ``http`` (GET, status 200-399 and optional content match), ``udp``
(a datagram must be answered) or ``dns`` (a query must be answered with the same id).  A real
is marked down after ``fails_down`` consecutive failures (default 4) and up again after
``succ_up`` consecutive successes (default 2).  Flapping is damped: each down→up→down cycle
within ``flap_window`` seconds doubles the successes needed to come back (up to 8×).  Every
change is logged with the time and the reason and handed to ``on_change`` at once (the manager
writes the hardware health mask then).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CheckSpec", "HealthChecker", "run_check"]

log = logging.getLogger("openslb.health")


@dataclass
class CheckSpec:
    kind: str                  #: icmp | tcp | http | udp | dns | none
    host: str
    port: int = 80
    content: str = ""          #: http: text the body must contain; dns: the name asked
    path: str = "/"
    interval: float = 2.0
    timeout: float = 1.0
    fails_down: int = 4
    succ_up: int = 2
    flap_window: float = 60.0


@dataclass
class RealState:
    up: bool = True
    fails: int = 0
    successes: int = 0
    downs: list[float] = field(default_factory=list)
    last_reason: str = ""


async def _tcp(spec: CheckSpec) -> str | None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(spec.host, spec.port),
                                            spec.timeout)
    writer.close()
    return None


async def _http(spec: CheckSpec) -> str | None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(spec.host, spec.port),
                                            spec.timeout)
    try:
        writer.write(f"GET {spec.path} HTTP/1.0\r\nHost: {spec.host}\r\n"
                     "User-Agent: openslb-health\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(65536), spec.timeout)
    finally:
        writer.close()
    status_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"http: no status line ({status_line[:40]!r})"
    code = int(parts[1])
    if not 200 <= code < 400:
        return f"http: status {code}"
    if spec.content and spec.content.encode() not in data:
        return f"http: content {spec.content!r} not found"
    return None


def _datagram_exchange(spec: CheckSpec, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(spec.timeout)
        s.connect((spec.host, spec.port))
        s.send(payload)
        return s.recv(4096)


def _dns_query(name: str, ident: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".") if p)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + b"\x00\x01\x00\x01"


async def _udp(spec: CheckSpec) -> str | None:
    reply = await asyncio.to_thread(_datagram_exchange, spec, b"openslb-health\n")
    return None if reply is not None else "udp: no answer"


async def _dns(spec: CheckSpec) -> str | None:
    ident = int.from_bytes(os.urandom(2), "big")
    reply = await asyncio.to_thread(_datagram_exchange, spec,
                                    _dns_query(spec.content or "localhost", ident))
    if len(reply) < 12 or int.from_bytes(reply[:2], "big") != ident or not reply[2] & 0x80:
        return "dns: not an answer to the query"
    return None


def _icmp_echo(spec: CheckSpec) -> str | None:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        raw = False
    except PermissionError:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            raw = True
        except PermissionError:
            return "icmp: needs root (or net.ipv4.ping_group_range)"
    with s:
        s.settimeout(spec.timeout)
        ident, seq = os.getpid() & 0xFFFF, 1
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        body = b"openslb"
        csum = _checksum(header + body)
        s.sendto(struct.pack("!BBHHH", 8, 0, csum, ident, seq) + body, (spec.host, 0))
        deadline = time.monotonic() + spec.timeout
        while time.monotonic() < deadline:
            data, _ = s.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4:] if raw else data
            if icmp and icmp[0] == 0:
                return None
        return "icmp: no echo reply"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


async def run_check(spec: CheckSpec) -> str | None:
    """One check: ``None`` when the real passed, else the reason it failed."""
    try:
        if spec.kind == "none":
            return None
        if spec.kind == "icmp":
            return await asyncio.to_thread(_icmp_echo, spec)
        return await {"tcp": _tcp, "http": _http, "udp": _udp, "dns": _dns}[spec.kind](spec)
    except asyncio.TimeoutError:
        return f"{spec.kind}: timeout after {spec.timeout:g} s"
    except socket.timeout:
        return f"{spec.kind}: timeout after {spec.timeout:g} s"
    except OSError as e:
        return f"{spec.kind}: {e.strerror or e}"


class HealthChecker:
    """Checks every real in ``specs`` (real → :class:`CheckSpec`) until :meth:`stop`."""

    def __init__(self, specs: dict[int, CheckSpec],
                 on_change: Callable[[int, bool, str], None]) -> None:
        self.specs = specs
        self.on_change = on_change
        self.state = {r: RealState() for r in specs}
        self._tasks: list[asyncio.Task] = []

    def record(self, real: int, reason: str | None, now: float | None = None) -> None:
        """Count one check result and report a change of state (the counting rule above)."""
        now = time.monotonic() if now is None else now
        spec, st = self.specs[real], self.state[real]
        if reason is None:
            st.fails, st.successes = 0, st.successes + 1
            recent = [t for t in st.downs if now - t < spec.flap_window]
            st.downs = recent
            needed = spec.succ_up * 2 ** min(max(len(recent) - 1, 0), 3)
            if not st.up and st.successes >= needed:
                st.up = True
                self._changed(real, True, f"{st.successes} successful {spec.kind} checks")
        else:
            st.successes, st.fails = 0, st.fails + 1
            st.last_reason = reason
            if st.up and st.fails >= spec.fails_down:
                st.up = False
                st.downs.append(now)
                self._changed(real, False, f"{st.fails} failed checks, last: {reason}")

    def _changed(self, real: int, up: bool, reason: str) -> None:
        log.warning("real %d %s: %s", real, "UP" if up else "DOWN", reason)
        self.on_change(real, up, reason)

    async def _loop(self, real: int) -> None:
        spec = self.specs[real]
        while True:
            started = time.monotonic()
            self.record(real, await run_check(spec))
            await asyncio.sleep(max(0.0, spec.interval - (time.monotonic() - started)))

    async def run(self, duration: float | None = None) -> None:
        self._tasks = [asyncio.create_task(self._loop(r)) for r in self.specs]
        try:
            if duration is None:
                await asyncio.gather(*self._tasks)
            else:
                await asyncio.sleep(duration)
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def specs_from_config(cfg, **kwargs) -> dict[int, CheckSpec]:
    """One :class:`CheckSpec` per real of a :class:`~openslb.firmware.slb.SlbConfig`: the
    check of the (first) group it is in, the port of the service that group serves, and the
    real's own ``inter`` / ``retry`` / ``restr``."""
    ports = {}
    for v in cfg.virts.values():
        for (port, _), s in v.services.items():
            if s.group is not None:
                ports.setdefault(s.group, s.rport or port or 80)
    out = {}
    for g in sorted(cfg.groups.values(), key=lambda g: g.num):
        for n in g.reals:
            r = cfg.reals.get(n)
            if r is None or r.rip is None or n in out:
                continue
            out[n] = CheckSpec(g.health, r.rip, ports.get(g.num, 80), g.content,
                               interval=r.inter, fails_down=r.retry, succ_up=r.restr, **kwargs)
    return out
