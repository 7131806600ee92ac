"""Register bank generated from :data:`openslb.hw.spec.REGISTERS`.

Ports
-----
``bus`` : In(:class:`BusSignature`) — the register bus (word addresses, 32-bit data).
For each register ``NAME`` of the map (lower-cased, arrays as port arrays):
- ``rw``: ``Out(32)`` — the stored value (reset value from the spec); for a *committed*
  register this is the active value, which takes the staged (written, read-back) value in the
  cycle ``commit`` is high;
- ``ro``: ``In(32)`` — the value the design presents;
- ``strobe``: ``Out(1)`` named ``<name>_stb``, one cycle per write; the value is on ``w_data``.

``commit`` : In(1) — applies every committed register's staged value.

Bus timing: a write takes effect at the end of the cycle with ``w_en``; read data is on
``r_data`` with ``r_valid`` two cycles after ``r_en`` (the address is taken with ``r_en``).
Unmapped addresses read 0 and ignore writes; strobe registers read 0; a register with fields
stores only their bits (:attr:`~openslb.hw.spec.Register.mask`).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.spec import ADDR_BITS, Access, Params, Register, registers

__all__ = ["BusSignature", "RegBank", "port_name", "READ_BLOCK"]

#: Registers per first-level read multiplexer.
READ_BLOCK = 16


class BusSignature(wiring.Signature):
    """A simple register bus, seen from the master (the UART bridge or a testbench)."""

    def __init__(self) -> None:
        super().__init__({
            "addr": Out(ADDR_BITS), "w_data": Out(32), "w_en": Out(1),
            "r_en": Out(1), "r_data": In(32), "r_valid": In(1),
        })


def port_name(reg: Register) -> str:
    base = reg.name.lower()
    return f"{base}_stb" if reg.access is Access.STROBE else base


def _member(reg: Register):
    kind = {Access.RW: Out(32, init=reg.reset), Access.RO: In(32), Access.STROBE: Out(1)}
    member = kind[reg.access]
    return member.array(reg.count) if reg.count > 1 else member


class RegBank(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.regs = registers(params)
        members = {"bus": In(BusSignature()), "w_data": Out(32), "commit": In(1)}
        for reg in self.regs:
            members[port_name(reg)] = _member(reg)
        super().__init__(members)

    def _ports(self, reg: Register) -> list:
        port = getattr(self, port_name(reg))
        return list(port) if reg.count > 1 else [port]

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.comb += self.w_data.eq(bus.w_data)
        storage = {}
        readable = {}      # the words a read returns (strobes read 0)
        for reg in self.regs:
            for k, port in enumerate(self._ports(reg)):
                if reg.committed:
                    staged = Signal(32, init=reg.reset, name=f"{port_name(reg)}_staged_{k}")
                    with m.If(self.commit):
                        m.d.sync += port.eq(staged)
                    storage[reg.offset + k] = staged
                else:
                    storage[reg.offset + k] = port
                if reg.access is not Access.STROBE:
                    readable[reg.offset + k] = storage[reg.offset + k]
        with m.Switch(bus.addr):
            for reg in self.regs:
                for k, port in enumerate(self._ports(reg)):
                    with m.Case(reg.offset + k):
                        if reg.access is Access.STROBE:
                            m.d.comb += port.eq(bus.w_en)
                        elif reg.access is Access.RW:
                            # only the fields' bits are stored (the rest stay at their reset,
                            # zero, so synthesis keeps no flip-flop and no read input for them)
                            with m.If(bus.w_en):
                                m.d.sync += storage[reg.offset + k].eq(bus.w_data & reg.mask)

        # Reads take two cycles, a multiplexer level each: the word within its block of
        # READ_BLOCK registers, then the block.
        blocks = sorted({offset // READ_BLOCK for offset in readable})
        partial = {b: Signal(32, name=f"read_block_{b}") for b in blocks}
        block_q = Signal(len(bus.addr))
        pending = Signal()
        m.d.sync += [pending.eq(bus.r_en), bus.r_valid.eq(pending)]
        with m.If(bus.r_en):
            m.d.sync += block_q.eq(bus.addr // READ_BLOCK)
            for b in blocks:
                with m.Switch(bus.addr % READ_BLOCK):
                    for offset, value in readable.items():
                        if offset // READ_BLOCK == b:
                            with m.Case(offset % READ_BLOCK):
                                m.d.sync += partial[b].eq(value)
                    with m.Default():
                        m.d.sync += partial[b].eq(0)
        with m.If(pending):
            m.d.sync += bus.r_data.eq(0)
            with m.Switch(block_q):
                for b in blocks:
                    with m.Case(b):
                        m.d.sync += bus.r_data.eq(partial[b])
        return m
