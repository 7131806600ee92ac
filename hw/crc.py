"""CRC-32 (IEEE 802.3 / ``zlib.crc32``), one byte per cycle, as an Amaranth expression.

The reflected polynomial 0xEDB88320 is unrolled over the eight bits of a byte into XOR trees
(no lookup table), which is what the UART bridge needs (one byte per bit time at most) and what
an Ethernet MAC will reuse for its FCS.  The register holds the running value before the final
inversion: start at ``CRC32_INIT`` and compare ``~crc`` with ``zlib.crc32(data)``.
"""

from __future__ import annotations

from amaranth import Cat, Value

__all__ = ["CRC32_INIT", "CRC32_POLY", "crc32_update", "crc32_update_py"]

CRC32_INIT = 0xFFFFFFFF
CRC32_POLY = 0xEDB88320


def crc32_update_py(crc: int, byte: int) -> int:
    """Python twin of :func:`crc32_update` (the bit-serial definition)."""
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ (CRC32_POLY if crc & 1 else 0)
    return crc


def _matrix() -> list[list[int]]:
    """For each output bit, the input bits (0-31 crc, 32-39 byte) it is the XOR of."""
    rows = []
    for out_bit in range(32):
        deps = []
        for in_bit in range(40):
            crc, byte = (1 << in_bit, 0) if in_bit < 32 else (0, 1 << (in_bit - 32))
            if crc32_update_py(crc, byte) >> out_bit & 1:   # the update is linear over GF(2)
                deps.append(in_bit)
        rows.append(deps)
    return rows


_ROWS = _matrix()


def crc32_update(crc: Value, byte: Value) -> Value:
    """Next CRC register value after ``byte`` (32-bit ``crc``, 8-bit ``byte``)."""
    bits = Cat(crc, byte)
    out = []
    for deps in _ROWS:
        term = bits[deps[0]]
        for d in deps[1:]:
            term = term ^ bits[d]
        out.append(term)
    return Cat(*out)
