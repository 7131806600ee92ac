"""Register bus backends: the serial bridge (board, pty, TCP, simulation) and the model.

Every backend has ``read(addr)``, ``write(addr, value)``, ``read_many(addr, count)`` and
``write_many(writes)`` (a list of ``(addr, value)``; consecutive runs to the same or to
consecutive addresses travel as bursts).  The firmware uses nothing else, so the same code
manages a board over USB serial, the cocotb simulation, the Verilator emulator and the
reference model.

:class:`SerialBus` speaks the bridge protocol of :data:`openslb.hw.spec.BRIDGE_DOC` over a
byte *transport* (``write(bytes)``, ``read(n) -> bytes`` returning early on timeout,
``reset_input_buffer()``, ``timeout`` attribute): a pyserial port from any URL
(``/dev/ttyUSB0``, ``/dev/pts/3``, ``socket://host:port``, ``loop://``) or the simulation's UART.
It resends a request whose response is missing, corrupt or not OK, up to ``retries`` times;
writes are never doubled because the bridge answers a resent write REPEAT without executing it.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

from openslb.hw.spec import (BRIDGE_CRC_BYTES, BRIDGE_MAX_BURST, BRIDGE_RESPONSE_HEADER,
                             BRIDGE_SYNC_REQUEST, BRIDGE_SYNC_RESPONSE, ID_MAGIC, REG, BridgeCmd,
                             BridgeStatus)

__all__ = ["BusError", "LinkStats", "SerialBus", "ModelBus", "encode_request", "open_serial",
           "bursts"]


#: Strobes whose every word has an effect of its own: never split or merged differently.
NOT_SPLITTABLE = {REG["TABLE_DATA"].offset, REG["TABLE_ADDR"].offset, REG["COMMIT"].offset,
                  REG["REAL_MAC_LO"].offset, REG["REAL_IP"].offset}
MIN_BURST = 8


class BusError(IOError):
    """The register bus failed after every retry (the message says what was tried)."""


def encode_request(seq: int, cmd: BridgeCmd, addr: int, count: int,
                   words: list[int] = ()) -> bytes:
    body = bytes([seq & 0xFF, int(cmd), addr >> 8 & 0xFF, addr & 0xFF, count])
    body += b"".join((w & 0xFFFFFFFF).to_bytes(4, "big") for w in words)
    return bytes([BRIDGE_SYNC_REQUEST]) + body + zlib.crc32(body).to_bytes(4, "big")


def bursts(writes: list[tuple[int, int]]) -> list[tuple[BridgeCmd, int, list[int]]]:
    """Group writes into bursts: runs to one address (WRITE_SAME) or to consecutive ones."""
    out: list[tuple[BridgeCmd, int, list[int]]] = []
    for addr, value in writes:
        if out and len(out[-1][2]) < BRIDGE_MAX_BURST:
            cmd, start, words = out[-1]
            n = len(words)
            if cmd == BridgeCmd.WRITE_SAME and addr == start:
                words.append(value)
                continue
            if cmd == BridgeCmd.WRITE and addr == start + n:
                words.append(value)
                continue
            if n == 1 and addr == start:
                out[-1] = (BridgeCmd.WRITE_SAME, start, words + [value])
                continue
        out.append((BridgeCmd.WRITE, addr, [value]))
    return out


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    bytes_out: int = 0
    bytes_in: int = 0


class SerialBus:
    """The bridge protocol over a byte transport, with timeouts and retries."""

    def __init__(self, transport, baud: int = 115200, retries: int = 8,
                 timeout_scale: float = 1.0, min_timeout: float = 0.05) -> None:
        self.t = transport
        self.baud = baud
        self.retries = retries
        self.timeout_scale = timeout_scale
        self.min_timeout = min_timeout
        self.seq = 0
        self.burst = BRIDGE_MAX_BURST
        self._good = 0
        self.stats = LinkStats()
        self._open_session()

    def _open_session(self) -> None:
        """A read first: it sets the bridge's remembered sequence number (see BRIDGE_DOC)."""
        ident = self.read(REG["ID"].offset)
        if ident != ID_MAGIC:
            raise BusError(f"no openslb bridge on this port (ID reads {ident:#010x}, "
                           f"expected {ID_MAGIC:#010x})")

    def _byte_time(self) -> float:
        return 10.0 / self.baud

    def _transact(self, cmd: BridgeCmd, addr: int, count: int, words: list[int] = (),
                  retries: int | None = None) -> list[int]:
        self.seq = (self.seq + 1) & 0xFF
        request = encode_request(self.seq, cmd, addr, count, list(words))
        answer_len = BRIDGE_RESPONSE_HEADER + BRIDGE_CRC_BYTES + (4 * count if cmd == BridgeCmd.READ else 0)
        wait = max(self.min_timeout, (len(request) + answer_len + 8) * self._byte_time() * 2)
        wait *= self.timeout_scale
        problems = []
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                self.stats.retries += 1
                # let a half-received request time out in the bridge before resending
                time.sleep(min(wait, 16 * self._byte_time() * self.timeout_scale))
                self.t.reset_input_buffer()
            self.t.write(request)
            self.stats.requests += 1
            self.stats.bytes_out += len(request)
            outcome = self._await_response(count if cmd == BridgeCmd.READ else 0, wait)
            if isinstance(outcome, str):
                problems.append(outcome)
                continue
            status, data = outcome
            if status == BridgeStatus.OK or (status == BridgeStatus.REPEAT and cmd != BridgeCmd.READ):
                return data
            problems.append(f"bridge answered {BridgeStatus(status).name}")
        raise BusError(f"{cmd.name} {count} word(s) at {addr:#05x} failed after "
                       f"{retries + 1} tries: {', '.join(problems[-3:])}")

    def _await_response(self, words: int, wait: float):
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "no response"
            self.t.timeout = left
            b = self.t.read(1)
            if not b:
                return "no response"
            self.stats.bytes_in += 1
            if b[0] != BRIDGE_SYNC_RESPONSE:
                continue
            head = self._read_exact(3, deadline)
            if head is None:
                return "response cut short"
            seq, status, count = head
            n = 4 * count + BRIDGE_CRC_BYTES
            if count > BRIDGE_MAX_BURST:
                continue
            rest = self._read_exact(n, deadline)
            if rest is None:
                return "response cut short"
            body = bytes(head) + rest[:-4]
            if zlib.crc32(body) != int.from_bytes(rest[-4:], "big"):
                continue   # a corrupt response: keep listening until the deadline
            if seq != self.seq:
                continue   # a late answer to an earlier try
            if status == BridgeStatus.OK and count != words:
                return f"{count} words returned, {words} expected"
            data = [int.from_bytes(rest[4 * k:4 * k + 4], "big") for k in range(count)]
            return status, data

    def _read_exact(self, n: int, deadline: float) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.t.timeout = left
            chunk = self.t.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        self.stats.bytes_in += n
        return bytes(buf)

    # -- the bus ------------------------------------------------------------------------------
    def read(self, addr: int) -> int:
        return self._transact(BridgeCmd.READ, addr, 1)[0]

    def read_many(self, addr: int, count: int) -> list[int]:
        out: list[int] = []
        while count:
            n = min(count, BRIDGE_MAX_BURST)
            out += self._transact(BridgeCmd.READ, addr, n)
            addr, count = addr + n, count - n
        return out

    def write(self, addr: int, value: int) -> None:
        self._transact(BridgeCmd.WRITE, addr, 1, [value])

    def write_many(self, writes: list[tuple[int, int]]) -> None:
        """Bursts of up to :attr:`burst` words.  On a noisy line long bursts rarely get through
        whole, so a burst that keeps failing is split into shorter ones (and the length grows
        back after a run of successes) — but only towards idempotent registers: a strobe with
        a side effect per word (TABLE_DATA, COMMIT) is only ever resent unchanged."""
        for cmd, addr, words in bursts(writes):
            splittable = addr not in NOT_SPLITTABLE
            i = 0
            while i < len(words):
                n = min(self.burst if splittable else BRIDGE_MAX_BURST, len(words) - i)
                start = addr + (i if cmd == BridgeCmd.WRITE else 0)
                try:
                    self._transact(cmd, start, n, words[i:i + n],
                                   retries=3 if splittable and n > MIN_BURST else None)
                except BusError:
                    if not splittable or n <= MIN_BURST:
                        raise
                    self.burst = max(MIN_BURST, n // 4)
                    self._good = 0
                    continue
                i += n
                self._good += 1
                if self._good >= 8 and self.burst < BRIDGE_MAX_BURST:
                    self.burst, self._good = min(BRIDGE_MAX_BURST, self.burst * 2), 0


class ModelBus:
    """The reference model as a bus (no link): a :class:`~openslb.model.device.DeviceModel`."""

    def __init__(self, device) -> None:
        self.device = device
        self.stats = LinkStats()

    def read(self, addr: int) -> int:
        return self.device.read(addr)

    def read_many(self, addr: int, count: int) -> list[int]:
        return [self.device.read(addr + k) for k in range(count)]

    def write(self, addr: int, value: int) -> None:
        self.device.write(addr, value)

    def write_many(self, writes: list[tuple[int, int]]) -> None:
        for addr, value in writes:
            self.device.write(addr, value)


def open_serial(url: str, baud: int = 115200, **kwargs) -> SerialBus:
    """A :class:`SerialBus` on a pyserial URL (``/dev/ttyUSB0``, ``socket://h:p``, a pty)."""
    import serial  # pyserial

    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
    except (serial.SerialException, ValueError) as e:
        raise BusError(f"cannot open {url}: {e}") from None
    return SerialBus(port, baud=baud, **kwargs)
