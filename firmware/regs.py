"""Register accessors generated from :mod:`openslb.hw.spec`, over any register bus backend.

A backend is anything with ``read(addr) -> int`` and ``write(addr, value)`` (word addresses,
32-bit values): the serial bridge, the cocotb simulation, the emulator.  Programming sequences are
built as plain ``(address, value)`` lists (see :mod:`openslb.firmware.program`) so that an
asynchronous backend (cocotb) can replay them too.
"""

from __future__ import annotations

from typing import Protocol

from openslb.hw.spec import (COUNTERS, DEFAULT_PARAMS, ID_MAGIC, REG, Access, Params,
                             pack_register, params_from_word, registers)

__all__ = ["RegisterBus", "Registers", "address", "pack_fields", "device_params", "NotACore"]


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


#: Pack named fields of a register into a word (unknown or too-wide fields refused).
pack_fields = pack_register


class NotACore(IOError):
    """What answers on the bus is not an openslb dispatch core (its ID or PARAMS is wrong)."""


def device_params(bus: RegisterBus) -> Params:
    """The parameters of the core behind ``bus``, from its ID and PARAMS registers: table sizes
    and profile differ from board to board, and the firmware must program the core it has.

    Raises
    ------
    NotACore
        When ID is not the openslb magic number, or PARAMS describes no possible core.
    """
    ident = bus.read(address("ID"))
    if ident != ID_MAGIC:
        raise NotACore(f"ID reads {ident:#010x}, not {ID_MAGIC:#010x} ('SLB1'): no openslb "
                       "core answers on this link")
    word = bus.read(address("PARAMS"))
    try:
        return params_from_word(word)
    except ValueError as e:
        raise NotACore(f"PARAMS reads {word:#010x}, which describes no core: {e}") from None


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
