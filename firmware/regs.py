"""Register accessors generated from :mod:`openslb.hw.spec`, over any register bus backend.

A backend is anything with ``read(addr) -> int`` and ``write(addr, value)`` (word addresses,
32-bit values): the serial bridge, the cocotb simulation, the emulator.  Programming sequences are
built as plain ``(address, value)`` lists (see :mod:`openslb.firmware.program`) so that an
asynchronous backend (cocotb) can replay them too.
"""

from __future__ import annotations

from typing import Protocol

from openslb.hw.spec import COUNTERS, DEFAULT_PARAMS, REG, Access, Params, Register, registers

__all__ = ["RegisterBus", "Registers", "address", "pack_fields"]


class RegisterBus(Protocol):
    def read(self, addr: int) -> int: ...
    def write(self, addr: int, value: int) -> None: ...


def address(name: str, index: int = 0) -> int:
    """Word address of register ``name`` (element ``index`` of an array)."""
    try:
        reg = REG[name]
    except KeyError:
        raise KeyError(f"no register named {name!r}") from None
    return reg.address(index)


def pack_fields(name: str, **values: int) -> int:
    """Pack named fields of register ``name`` into a word (unknown or too-wide fields refused)."""
    reg: Register = REG[name]
    fields = {f[0]: f for f in reg.fields}
    word = 0
    for fname, value in values.items():
        if fname not in fields:
            raise KeyError(f"{name} has no field {fname!r}")
        _, lsb, width = fields[fname]
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name}.{fname} = {value} does not fit in {width} bits")
        word |= value << lsb
    return word


class Registers:
    """Named access to the register map through a bus backend."""

    def __init__(self, bus: RegisterBus, params: Params = DEFAULT_PARAMS) -> None:
        self.bus = bus
        self.map = {r.name: r for r in registers(params)}

    def read(self, name: str, index: int = 0) -> int:
        return self.bus.read(self.map[name].address(index))

    def write(self, name: str, value: int, index: int = 0) -> None:
        reg = self.map[name]
        if reg.access is Access.RO:
            raise PermissionError(f"{name} is read-only")
        self.bus.write(reg.address(index), value & 0xFFFFFFFF)

    def counters(self) -> dict[str, int]:
        """Snapshot every global counter (consistent across all of them) and read it."""
        self.write("SNAPSHOT", 1)
        words = [self.read("COUNTER", k) for k in range(2 * len(COUNTERS))]
        return {name: words[2 * n] | words[2 * n + 1] << 32 for n, name in enumerate(COUNTERS)}
