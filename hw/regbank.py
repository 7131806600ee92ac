"""Register bank generated from :data:`openslb.hw.spec.REGISTERS`.

Ports
-----
``bus`` : In(:class:`BusSignature`) — the register bus (word addresses, 32-bit data).
For each register ``NAME`` of the map (lower-cased, arrays as port arrays):
- ``rw``: ``Out(32)`` — the stored value (reset value from the spec); for a *committed*
  register this is the active value, which takes the staged (written, read-back) value in the
  cycle ``commit`` is high;
- ``ro``: ``In(32)`` — the value the design presents; an *indexed* array presents one word,
  ``In(32)``, the one its ``<name>_index`` port (``Out``, the bus address less the array's
  offset) names: the design reads it from a RAM (the counter snapshots);
- ``strobe``: ``Out(1)`` named ``<name>_stb``, one cycle per write; the value is on ``w_data``.

``commit`` : In(1) — applies every committed register's staged value.

Bus timing: a write takes effect at the end of the cycle with ``w_en``; read data is on
``r_data`` with ``r_valid`` two cycles after ``r_en`` (the address is taken with ``r_en``;
``r_data`` is only meaningful with ``r_valid``).  Read-write registers read back from a block
RAM that copies every write (reset values until first written), read-only ones through a
two-level multiplexer.
Unmapped addresses read 0 and ignore writes; strobe registers read 0; a register with fields
stores only their bits (:attr:`~openslb.hw.spec.Register.mask`).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
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
    return member.array(reg.count) if reg.count > 1 and not reg.indexed else member


@dataclass
class _ReadBack:
    """The read-back copy's signals: ``index`` numbers the read-write addresses (their bit in
    ``written``); ``selected`` and ``data`` say whether the read two cycles ago was of a
    read-write register, and its value."""
    index: dict
    written: Signal
    is_rw: Signal
    valid_q: Signal
    mask_q: Signal
    reset_q: Signal
    selected: Signal
    data: Signal


class RegBank(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.regs = registers(params)
        members = {"bus": In(BusSignature()), "w_data": Out(32), "commit": In(1)}
        for reg in self.regs:
            members[port_name(reg)] = _member(reg)
            if reg.indexed:
                members[f"{port_name(reg)}_index"] = Out(range(reg.count))
        super().__init__(members)

    def _ports(self, reg: Register) -> list:
        """The signal of each word of ``reg`` (an indexed array's one port for all of them)."""
        port = getattr(self, port_name(reg))
        if reg.indexed:
            return [port] * reg.count
        return list(port) if reg.count > 1 else [port]

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.comb += self.w_data.eq(bus.w_data)
        for reg in self.regs:
            if reg.indexed:
                index = getattr(self, f"{port_name(reg)}_index")
                m.d.comb += index.eq((bus.addr - reg.offset)[0:len(index)])
        rw_words = {}      # address -> (register, its written value: staged if committed)
        ro_words = {}      # address -> the value the design presents
        for reg in self.regs:
            for k, port in enumerate(self._ports(reg)):
                if reg.access is Access.RW:
                    stored = port
                    if reg.committed:
                        stored = Signal(32, init=reg.reset, name=f"{port_name(reg)}_staged_{k}")
                        with m.If(self.commit):
                            m.d.sync += port.eq(stored)
                    rw_words[reg.offset + k] = (reg, stored)
                elif reg.access is Access.RO:
                    ro_words[reg.offset + k] = port

        # Writes, and the read-back copy's bookkeeping of the read-write registers, under one
        # decode of the address.  Only the fields' bits are stored: the others stay at their
        # reset value, zero, so synthesis keeps no flip-flop for them.
        # Reads take two cycles.  A read-write register reads back from a copy of every write
        # in a block RAM (a multiplexer over every stored bit would cost about one LUT per
        # bit, several thousand in all), or its reset value until it is first written; a
        # read-only one through two multiplexer levels: the word within its block of
        # READ_BLOCK registers, then the block.
        back = self._read_back_copy(m, rw_words)
        with m.Switch(bus.addr):
            for reg in self.regs:
                for k, port in enumerate(self._ports(reg)):
                    addr = reg.offset + k
                    with m.Case(addr):
                        if reg.access is Access.STROBE:
                            m.d.comb += port.eq(bus.w_en)
                        elif reg.access is Access.RW:
                            written = back.written[back.index[addr]]
                            with m.If(bus.w_en):
                                m.d.sync += [rw_words[addr][1].eq(bus.w_data & reg.mask),
                                             written.eq(1)]
                            # the address's kind, mask, reset value and written bit, in step
                            # with the RAM's read
                            m.d.comb += back.is_rw.eq(1)
                            m.d.sync += [back.valid_q.eq(written), back.mask_q.eq(reg.mask),
                                         back.reset_q.eq(reg.reset)]
        ro_data = self._read_only_mux(m, ro_words)
        m.d.comb += bus.r_data.eq(Mux(back.selected, back.data, ro_data))
        return m

    def _read_back_copy(self, m: Module, rw_words: dict) -> _ReadBack:
        """The block RAM copy of the read-write registers, and the registers that follow a
        read of one; the caller's address decode sets ``is_rw``, ``written`` and the ``_q``
        registers."""
        bus = self.bus
        depth = 1 << max(rw_words).bit_length()
        m.submodules.read_back = copy = BlockRam(32, depth)
        back = _ReadBack(index={addr: n for n, addr in enumerate(sorted(rw_words))},
                         written=Signal(len(rw_words)),   # since reset: else the reset value
                         is_rw=Signal(), valid_q=Signal(), mask_q=Signal(32),
                         reset_q=Signal(32), selected=Signal(), data=Signal(32))
        m.d.comb += [copy.w_addr.eq(bus.addr), copy.w_data.eq(bus.w_data),
                     copy.w_en.eq(bus.w_en & back.is_rw), copy.r_addr.eq(bus.addr)]
        rw_q, valid_q2, mask_q2, reset_q2 = Signal(), Signal(), Signal(32), Signal(32)
        m.d.sync += [rw_q.eq(back.is_rw), back.selected.eq(rw_q), valid_q2.eq(back.valid_q),
                     mask_q2.eq(back.mask_q), reset_q2.eq(back.reset_q)]
        m.d.comb += back.data.eq(Mux(valid_q2, copy.r_data & mask_q2, reset_q2))
        return back

    def _read_only_mux(self, m: Module, ro_words: dict) -> Signal:
        """The two-level multiplexer of the read-only registers (and ``r_valid``): the value
        read two cycles ago, 0 for any other address."""
        bus = self.bus
        blocks = sorted({offset // READ_BLOCK for offset in ro_words})
        partial = {b: Signal(32, name=f"read_block_{b}") for b in blocks}
        block_q = Signal(len(bus.addr))
        pending = Signal()
        ro_data = Signal(32)
        m.d.sync += [pending.eq(bus.r_en), bus.r_valid.eq(pending)]
        with m.If(bus.r_en):
            m.d.sync += block_q.eq(bus.addr // READ_BLOCK)
            for b in blocks:
                with m.Switch(bus.addr % READ_BLOCK):
                    for offset, value in ro_words.items():
                        if offset // READ_BLOCK == b:
                            with m.Case(offset % READ_BLOCK):
                                m.d.sync += partial[b].eq(value)
                    with m.Default():
                        m.d.sync += partial[b].eq(0)
        with m.If(pending):
            m.d.sync += ro_data.eq(0)
            with m.Switch(block_q):
                for b in blocks:
                    with m.Case(b):
                        m.d.sync += ro_data.eq(partial[b])
        return ro_data
