"""UART receiver and transmitter, 8N1, for the management bridge.

Ports
-----
``UartRx``: ``rx`` In(1) — the line (idle high); ``o`` Out(stream of 8 bits) — received
bytes; ``framing_error`` Out(1) — a one-cycle pulse for a byte whose stop bit was low (the byte
is dropped).  A byte is presented for one cycle (``o.ready`` is not waited for: the bridge always
takes bytes, at one per ten bit times).
``UartTx``: ``i`` In(stream of 8 bits) — bytes to send; ``tx`` Out(1) — the line.

``divisor`` = clock cycles per bit (``clk_hz // baud``), fixed at build time: 1356 for 115200
baud at 156.25 MHz; simulations use small divisors to run fast.  The receiver synchronises the
line through two flip-flops, finds the start bit's falling edge, checks the start bit again at
its middle and samples every data bit at its middle.  Throughput: one byte per ``10 * divisor``
cycles each way.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx"]


class UartRx(wiring.Component):
    def __init__(self, divisor: int) -> None:
        if divisor < 4:
            raise ValueError("a UART needs at least 4 clock cycles per bit")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor + self.divisor // 2 + 1))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += [self.o.valid.eq(0), self.framing_error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):      # the middle of the start bit must still be low
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(_shift_down(shift, line)), timer.eq(self.divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                    m.next = "WAIT_IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("WAIT_IDLE"):  # a break (line held low) is not a stream of zero bytes
                with m.If(line):
                    m.next = "IDLE"
        return m


def _shift_down(reg, msb):
    """Bits travel LSB first: a new bit enters at the top and the register shifts down."""
    return Cat(reg[1:], msb)


class UartTx(wiring.Component):
    def __init__(self, divisor: int) -> None:
        if divisor < 4:
            raise ValueError("a UART needs at least 4 clock cycles per bit")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits = Signal(10, init=0x3FF)    # stop, data[7:0], start (sent LSB first)
        left = Signal(range(11))
        m.d.comb += self.tx.eq(bits[0])
        with m.If(left == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [bits.eq(Cat(0, self.i.payload, 1)), left.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [bits.eq(_shift_down(bits, 1)), left.eq(left - 1), timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
