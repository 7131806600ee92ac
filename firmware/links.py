"""Byte transports for :class:`~openslb.firmware.bus.SerialBus` that are not serial ports.

:class:`ModelLink` puts the bridge's reference model (:class:`~openslb.model.bridge.BridgeModel`)
at the far end of a (possibly noisy) line: the firmware then runs its real serial code path,
retries included, against the model.  ``noise`` corrupts, drops and duplicates bytes in both
directions with the given probabilities; a resend (``reset_input_buffer``) counts as the line
going quiet, which abandons a half-received request as the bridge's timeout does.
"""

from __future__ import annotations

import random

__all__ = ["ModelLink"]


class ModelLink:
    def __init__(self, bridge, corrupt: float = 0.0, drop: float = 0.0, duplicate: float = 0.0,
                 seed: int = 1, on_request=None) -> None:
        self.bridge = bridge
        self.corrupt, self.drop, self.duplicate = corrupt, drop, duplicate
        self.rng = random.Random(seed)
        self.rx = bytearray()
        self.timeout = 0.1
        self.on_request = on_request     #: called after the bridge has taken each burst
        self.bytes_on_wire = 0

    def _noisy(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                continue
            if r < self.drop + self.corrupt:
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
            if self.rng.random() < self.duplicate:
                out.append(b)
        return bytes(out)

    def write(self, data: bytes) -> int:
        self.bytes_on_wire += len(data)
        reply = self.bridge.feed(self._noisy(data))
        if self.on_request is not None:
            self.on_request()
        self.bytes_on_wire += len(reply)
        self.rx += self._noisy(reply)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def reset_input_buffer(self) -> None:
        self.rx.clear()
        self.bridge.timeout()
