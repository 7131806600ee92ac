"""Reference model of the Ethernet MAC (:mod:`openslb.hw.mac`): what goes on the wire for a
frame, and what the receiver makes of a stream of bytes on the wire."""

from __future__ import annotations

import zlib
from collections import Counter

__all__ = ["on_wire", "fcs", "receive", "PREAMBLE_SFD", "MIN_FRAME"]

PREAMBLE_SFD = bytes([0x55] * 7 + [0xD5])
MIN_FRAME = 64           # with the FCS


def fcs(frame: bytes) -> bytes:
    """The frame check sequence (CRC-32, sent least significant byte first)."""
    return zlib.crc32(frame).to_bytes(4, "little")


def on_wire(frame: bytes) -> bytes:
    """Preamble, SFD, the frame padded to 60 bytes, and its FCS (what the transmitter sends)."""
    padded = frame + bytes(max(0, MIN_FRAME - 4 - len(frame)))
    return PREAMBLE_SFD + padded + fcs(padded)


def receive(bursts: list[tuple[bytes, int | None]], max_frame: int) -> tuple[list[bytes], Counter]:
    """What the receiver forwards and counts.

    ``bursts``: the bytes of each carrier burst (``rx_dv`` high), preamble included, with the
    index of a byte sent with ``rx_er`` (or ``None``).  Returns the frames forwarded (FCS
    stripped) and the counters by :data:`openslb.hw.mac.MAC_COUNTERS` name.
    """
    out, counts = [], Counter()
    for burst, error_at in bursts:
        k = 0
        while k < len(burst) and burst[k] == 0x55:
            k += 1
        if k == 0 or k >= len(burst) or burst[k] != 0xD5:
            continue                                    # no preamble/SFD: ignored, not counted
        body = burst[k + 1:]
        if error_at is not None and error_at > k:
            counts["rx_error"] += 1
        elif len(body) > max_frame + 4:
            counts["rx_oversize"] += 1
        elif len(body) < MIN_FRAME:
            counts["rx_runt"] += 1
        elif fcs(body[:-4]) != body[-4:]:
            counts["rx_bad_fcs"] += 1
        else:
            counts["rx_ok"] += 1
            out.append(body[:-4])
    return out, counts
