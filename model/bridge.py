"""Reference model of the UART register bridge (:mod:`openslb.hw.bridge`), byte for byte.

``BridgeModel(device).feed(data)`` consumes request bytes and returns the response bytes the
RTL sends; ``timeout()`` is the line going quiet for BRIDGE_TIMEOUT_BYTES byte times (a request
in progress is abandoned).  ``device`` is any register bus (``read``/``write``), normally a
:class:`~openslb.model.device.DeviceModel`.
"""

from __future__ import annotations

import zlib

from openslb.hw.spec import (ADDR_BITS, BRIDGE_MAX_BURST, BRIDGE_SYNC_REQUEST, BRIDGE_SYNC_RESPONSE,
                             BridgeCmd, BridgeStatus)

__all__ = ["BridgeModel", "response_bytes"]


def response_bytes(seq: int, status: int, words: list[int]) -> bytes:
    body = bytes([seq, status, len(words)]) + b"".join(w.to_bytes(4, "big") for w in words)
    return bytes([BRIDGE_SYNC_RESPONSE]) + body + zlib.crc32(body).to_bytes(4, "big")


class BridgeModel:
    def __init__(self, device) -> None:
        self.device = device
        self.last_seq: int | None = None
        self.frame: bytearray | None = None   # bytes after the sync byte, while receiving

    def timeout(self) -> None:
        self.frame = None

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            out += self._byte(byte)
        return bytes(out)

    def _byte(self, byte: int) -> bytes:
        if self.frame is None:
            if byte == BRIDGE_SYNC_REQUEST:
                self.frame = bytearray()
            return b""
        f = self.frame
        f.append(byte)
        if len(f) < 5:
            return b""
        seq, cmd, count = f[0], f[1], f[4]
        if len(f) == 5:
            if count == 0 or count > BRIDGE_MAX_BURST:
                return self._respond(seq, BridgeStatus.BAD_LEN)
            if cmd not in set(BridgeCmd):
                return self._respond(seq, BridgeStatus.BAD_CMD)
        data_len = 4 * count if cmd != BridgeCmd.READ else 0
        if len(f) < 5 + data_len + 4:
            return b""
        body, crc = bytes(f[:5 + data_len]), int.from_bytes(f[5 + data_len:], "big")
        if zlib.crc32(body) != crc:
            return self._respond(seq, BridgeStatus.BAD_CRC)
        is_write = cmd != BridgeCmd.READ
        if is_write and seq == self.last_seq:
            return self._respond(seq, BridgeStatus.REPEAT)
        self.last_seq = seq
        addr = f[2] << 8 | f[3]
        step = 0 if cmd == BridgeCmd.WRITE_SAME else 1
        if is_write:
            for k in range(count):
                self.device.write((addr + k * step) & ((1 << ADDR_BITS) - 1),
                                  int.from_bytes(body[5 + 4 * k:9 + 4 * k], "big"))
            return self._respond(seq, BridgeStatus.OK)
        words = [self.device.read((addr + k) & ((1 << ADDR_BITS) - 1)) for k in range(count)]
        return self._respond(seq, BridgeStatus.OK, words)

    def _respond(self, seq: int, status: BridgeStatus, words: list[int] | None = None) -> bytes:
        self.frame = None
        return response_bytes(seq, status, words or [])
