"""Block RAM with a registered read: one write port, one read port, read latency 2.

Ports
-----
``w_en``, ``w_addr``, ``w_data`` : In — write ``w_data`` at ``w_addr`` at the clock edge.
``r_addr``                       : In — address to read.
``r_data``                       : Out(width) — the word at ``r_addr`` two edges earlier.
``a_data``                       : Out(width), only with ``dual_read`` — the word at ``w_addr``
                                   two edges earlier (port A reads when it does not write).

Latency 2 cycles (address → data), one read and one write every cycle.  A read of the word
being written in the same cycle returns the old word in simulation; on an ECP5 the two ports
collide and the read is undefined, so callers never depend on it.

Why it exists: yosys infers ECP5 ``DP16KD`` block RAMs without their output register, and
nextpnr's timing model gives such a RAM about 5.8 ns from clock to data, which alone rules out
156.25 MHz once any routing or logic follows.  Elaborated for an ECP5 (``platform.family ==
"ecp5"``) this block instantiates ``DP16KD`` with ``REGMODE=OUTREG`` (the second cycle of
latency is the RAM's own output register, well under a nanosecond from clock to data); elsewhere
(simulation, Verilator, other FPGAs) it is an inferred memory followed by a register, which has
the same cycle behaviour.  The primitive's width/depth configuration is chosen per memory
(:func:`ecp5_layout`); memories are not cascaded in depth (at most 16384 words).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import C, Cat, ClockSignal, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BlockRam", "ecp5_layout", "Ecp5Layout"]

#: DP16KD data widths and the depth each gives (the 36-bit one uses both ports' data pins for
#: one read port and one write port).  ``shift`` is where the word address starts in AD[13:0].
_DP16KD_MODES = ((1, 16384, 0), (2, 8192, 1), (4, 4096, 2), (9, 2048, 3), (18, 1024, 4),
                 (36, 512, 5))


@dataclass(frozen=True)
class Ecp5Layout:
    """How one memory maps onto DP16KD primitives: ``count`` side by side, each ``width`` bits."""
    width: int
    depth: int
    shift: int
    count: int


def ecp5_layout(width: int, depth: int, dual_read: bool = False) -> Ecp5Layout:
    """The DP16KD configuration that holds ``width`` × ``depth`` in the fewest primitives (the
    36-bit mode needs both ports for one read, so a ``dual_read`` memory cannot use it)."""
    fits = [(-(-width // w), w, d, s) for w, d, s in _DP16KD_MODES
            if d >= depth and not (dual_read and w == 36)]
    if not fits:
        raise ValueError(f"BlockRam depth {depth} exceeds one DP16KD (16384 words)")
    count, w, d, s = min(fits)
    return Ecp5Layout(width=w, depth=d, shift=s, count=count)


class BlockRam(wiring.Component):
    LATENCY = 2  #: cycles from ``r_addr`` to ``r_data``

    def __init__(self, width: int, depth: int, dual_read: bool = False) -> None:
        self.width = width
        self.depth = depth
        self.dual_read = dual_read
        ports = {
            "w_en": In(1),
            "w_addr": In(range(depth)),
            "w_data": In(width),
            "r_addr": In(range(depth)),
            "r_data": Out(width),
        }
        if dual_read:
            ports["a_data"] = Out(width)
        super().__init__(ports)

    def elaborate(self, platform):
        if getattr(platform, "family", None) == "ecp5":
            return self._ecp5()
        return self._generic()

    def _generic(self) -> Module:
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(self.r_addr), wr.en.eq(self.w_en), wr.addr.eq(self.w_addr),
                     wr.data.eq(self.w_data)]
        m.d.sync += self.r_data.eq(rd.data)
        if self.dual_read:
            rd_a = mem.read_port()
            m.d.comb += rd_a.addr.eq(self.w_addr)
            m.d.sync += self.a_data.eq(rd_a.data)
        return m

    def _ecp5(self) -> Module:
        m = Module()
        lay = ecp5_layout(self.width, self.depth, self.dual_read)
        padded = lay.width * lay.count
        w_data = Cat(self.w_data, C(0, padded - self.width))
        r_data, a_data = Signal(padded), Signal(padded)
        m.d.comb += self.r_data.eq(r_data[:self.width])
        if self.dual_read:
            m.d.comb += self.a_data.eq(a_data[:self.width])
        w_ad = _address(self.w_addr, lay, write=True)
        r_ad = _address(self.r_addr, lay, write=False)
        for k in range(lay.count):
            part = slice(k * lay.width, (k + 1) * lay.width)
            m.submodules[f"bram{k}"] = _dp16kd(lay, w_data[part], r_data[part], a_data[part],
                                               self.w_en, w_ad, r_ad)
        return m


def _address(addr: Signal, lay: Ecp5Layout, write: bool):
    """AD[13:0]: the word address above ``shift``; below it the byte enables of a wide write
    port (all on) or zeros."""
    enables = {18: 0b11, 36: 0b1111}.get(lay.width, 0) if write else 0
    low = C(enables, lay.shift)
    return Cat(low, addr, C(0, 14 - lay.shift - len(addr)))


def _dp16kd(lay: Ecp5Layout, din, dout, dout_port_a, w_en, w_ad, r_ad) -> Module:
    """Port A writes, port B reads through its output register.  In the 36-bit mode the data
    pins of both ports carry one word (low half on A, high half on B)."""
    wide = lay.width == 36
    half = 18 if wide else lay.width
    din18 = Cat(din, C(0, 36 - lay.width))
    dout_a, dout_b = Signal(18), Signal(18)
    ports = {
        "i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
        "i_CEA": C(1, 1), "i_CEB": C(1, 1), "i_OCEA": C(1, 1), "i_OCEB": C(1, 1),
        "i_RSTA": C(0, 1), "i_RSTB": C(0, 1),
        "i_WEA": w_en, "i_WEB": C(0, 1),
        **{f"i_CSA{i}": C(0, 1) for i in range(3)}, **{f"i_CSB{i}": C(0, 1) for i in range(3)},
        **{f"i_ADA{i}": w_ad[i] for i in range(14)}, **{f"i_ADB{i}": r_ad[i] for i in range(14)},
        **{f"i_DIA{i}": din18[i] for i in range(18)},
        **{f"i_DIB{i}": (din18[18 + i] if wide else C(0, 1)) for i in range(18)},
        **{f"o_DOA{i}": dout_a[i] for i in range(18)},
        **{f"o_DOB{i}": dout_b[i] for i in range(18)},
    }
    inst = Instance(
        "DP16KD",
        p_DATA_WIDTH_A=lay.width, p_DATA_WIDTH_B=lay.width,
        p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
        p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
        p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
        p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
        **ports)
    m = Module()
    m.submodules.prim = inst
    if wide:
        m.d.comb += dout.eq(Cat(dout_a, dout_b))
    else:
        m.d.comb += [dout.eq(dout_b[:half]), dout_port_a.eq(dout_a[:half])]
    return m
