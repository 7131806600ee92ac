"""Ethernet MAC (GMII byte interface, with a byte enable for 10/100 Mb/s) with the clock-domain
crossing into the core.

Blocks
------
:class:`FrameFifo` — byte FIFO whose writer commits or rolls back each frame (a frame is only
    visible to the reader once it is complete and good); read side is a byte stream with
    ``first``/``last``, one byte per cycle within a frame, one idle cycle between frames.
:class:`MacRx` — GMII receive: waits for the preamble and SFD, checks the FCS (CRC-32 residue),
    drops runts (< 64 bytes with FCS), oversize frames (> ``max_frame`` + 4), frames with
    ``rx_er`` and frames that do not fit in the FIFO, each counted by reason; strips the FCS.
:class:`MacTx` — GMII transmit: store and forward (a frame starts only when it is complete, so
    it can never underrun), 7 preamble bytes and the SFD, the frame padded to 60 bytes, the FCS,
    then at least 12 idle byte times (the inter-frame gap).
:class:`Upsizer` / :class:`Downsizer` — byte stream ↔ core beats of ``width`` bits.
:class:`EthPort` — one port: GMII in the ``eth_rx`` / ``eth_tx`` clock domains, beats in the
    core's ``sync`` domain, an ``AsyncFIFO`` each way.

RGMII (:class:`RgmiiAdapter`) is GMII with both clock edges used: the board top's DDR buffers
hand it the rising- and falling-edge halves, and it makes the GMII bytes of this module.  At
10/100 Mb/s a byte takes two cycles of a slower clock: the adapter raises ``rx_ce``/``tx_ce``
in the cycles that carry a byte, and the MAC's line side moves only in those.

Model: :mod:`openslb.model.mac` (what goes on the wire and what a received stream yields).
"""

from __future__ import annotations

from amaranth import Cat, Const, DomainRenamer, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.crc import CRC32_INIT, crc32_update
from openslb.hw.layouts import beat_layout
from openslb.hw.spec import MAC_COUNTER_NAMES, Params

__all__ = ["MacRx", "MacTx", "FrameFifo", "Upsizer", "Downsizer", "EthPort", "RgmiiAdapter",
           "byte_layout", "frame_fifo_depth", "MAC_COUNTERS", "MIN_FRAME", "PREAMBLE", "SFD",
           "IFG_BYTES"]

#: Shortest frame on the wire, with its FCS.
MIN_FRAME = 64
PREAMBLE = 0x55
SFD = 0xD5
IFG_BYTES = 12
#: CRC-32 register after a frame and its own FCS went through it (the "magic" residue).
CRC_RESIDUE = 0xDEBB20E3
#: Receive counters of :class:`MacRx`, in port order (the MAC_STAT registers).
MAC_COUNTERS = MAC_COUNTER_NAMES


def frame_fifo_depth(max_frame: int) -> int:
    """The smallest frame FIFO (a power of two) that holds a ``max_frame``-byte frame (it keeps
    two bytes back, :class:`FrameFifo`).  2048 bytes is one ECP5 block RAM: a deeper FIFO reads
    through a multiplexer behind two block RAMs, whose 5.8 ns from clock to data (speed 6)
    then leave too little of a 125 MHz cycle for it."""
    return 1 << (max_frame + 2 - 1).bit_length()


def byte_layout() -> data.StructLayout:
    return data.StructLayout({"data": 8, "first": 1, "last": 1})


class FrameFifo(wiring.Component):
    """Byte FIFO of whole frames: the writer commits or rolls back each frame.

    Ports
    -----
    ``w_data``, ``w_en``       : In — a byte of the frame being written.
    ``commit`` / ``rollback``  : In — the frame written so far becomes readable / is forgotten
                                 (a write in the same cycle belongs to it).
    ``w_any``                  : Out — a byte may be written next cycle (registered).
    ``o``                      : Out stream of bytes with ``first``/``last``.

    Latency: a committed frame's first byte is on ``o`` 6 cycles after the commit (two each
    for the length FIFO and the start of the read, the block RAM, the output buffer).  Throughput: one byte per cycle
    within a frame, one idle cycle between frames.

    The bytes are read through :class:`~openslb.hw.bram.BlockRam`, whose output register (the
    DP16KD's own, on an ECP5) keeps the RAM's 5.8 ns from clock to data out of every path, into
    a small buffer whose output is a register too.  Reads are issued against credits
    (``OUT_CREDITS``: bytes read but not yet taken from ``o``), so a byte on its way out of the
    RAM always has a place and the buffer never needs back-pressure towards the RAM.
    """

    #: Bytes read from the RAM and not yet taken from ``o`` at most.  More than the read's
    #: latency to ``o`` (4 cycles), so a reader that takes a byte every cycle is never starved.
    OUT_CREDITS = 6

    def __init__(self, depth: int) -> None:
        if depth & (depth - 1):
            raise ValueError("FrameFifo depth must be a power of two")
        self.depth = depth
        super().__init__({
            "w_data": In(8), "w_en": In(1), "commit": In(1), "rollback": In(1),
            "w_any": Out(1),      # a byte may be written (registered)
            "o": Out(stream.Signature(byte_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.mem = mem = BlockRam(8, depth)
        bits = (depth - 1).bit_length() + 1
        w_tent, w_done, r_ptr = Signal(bits), Signal(bits), Signal(bits)
        length = Signal(16)
        m.submodules.lengths = lengths = fifo.SyncFIFO(width=16, depth=16)
        m.d.comb += [mem.w_addr.eq(w_tent[:-1]), mem.w_data.eq(self.w_data),
                     mem.w_en.eq(self.w_en)]
        # room for a byte, registered (so that no subtractor or compare sits in front of the
        # writer's decision to write; at 125 MHz one did, the longest path of a port's transmit
        # side), two bytes short: the write that may land in the same cycle is allowed for, and
        # the slot being read is never written in the same cycle (an ECP5 block RAM's two ports
        # collide there).  The fill level is modulo the pointers' width: Amaranth's a - b is
        # signed(bits + 1), negative once the write pointer has wrapped, and a full FIFO then
        # took more bytes (found at 10/100 Mb/s, where it fills).
        used = Signal(bits)
        m.d.comb += used.eq(w_tent - r_ptr)
        m.d.sync += self.w_any.eq(lengths.w_rdy & (used < depth - 2))
        # the write pointer and the frame's length, each kept with its successor, so that a
        # commit in the cycle of a write picks (a multiplexer) instead of adding (a carry chain
        # behind the writer's decision)
        w_tent_p1 = Signal(bits, init=1)
        length_p1 = Signal(16, init=1)
        with m.If(self.w_en):
            m.d.sync += [w_tent.eq(w_tent_p1), w_tent_p1.eq(w_tent_p1 + 1),
                         length.eq(length_p1), length_p1.eq(length_p1 + 1)]
        with m.If(self.commit):
            m.d.comb += [lengths.w_en.eq(1),
                         lengths.w_data.eq(Mux(self.w_en, length_p1, length))]
            m.d.sync += [w_done.eq(Mux(self.w_en, w_tent_p1, w_tent)),
                         length.eq(0), length_p1.eq(1)]
        with m.Elif(self.rollback):
            m.d.sync += [w_tent.eq(w_done), w_tent_p1.eq(w_done + 1),
                         length.eq(0), length_p1.eq(1)]
        self._read_side(m, mem, lengths, r_ptr)
        return m

    def _read_side(self, m: Module, mem: BlockRam, lengths, r_ptr: Signal) -> None:
        """One committed frame at a time: a read issued per cycle while credits last; each byte
        lands in the output buffer ``BlockRam.LATENCY`` cycles later with its first/last."""
        m.submodules.out = out = fifo.SyncFIFOBuffered(width=byte_layout().size,
                                                       depth=self.OUT_CREDITS + 1)
        left = Signal(16)
        busy, first = Signal(), Signal()
        credits_used = Signal(range(self.OUT_CREDITS + 1))
        issue = Signal()
        taken = Signal()
        m.d.comb += [issue.eq(busy & (credits_used != self.OUT_CREDITS)),
                     taken.eq(out.r_rdy & out.r_en),
                     mem.r_addr.eq(r_ptr[:-1])]
        m.d.sync += credits_used.eq(credits_used + issue - taken)
        with m.If(~busy & lengths.r_rdy):
            m.d.comb += lengths.r_en.eq(1)
            m.d.sync += [busy.eq(1), left.eq(lengths.r_data), first.eq(1)]
        with m.If(issue):
            m.d.sync += [r_ptr.eq(r_ptr + 1), left.eq(left - 1), first.eq(0)]
            with m.If(left == 1):
                m.d.sync += busy.eq(0)
        # first/last of each read, delayed with it through the RAM's latency
        read = Cat(issue, first, left == 1)          # valid, first, last
        for _ in range(BlockRam.LATENCY):
            delayed = Signal(3)
            m.d.sync += delayed.eq(read)
            read = delayed
        m.d.comb += [out.w_en.eq(read[0]), out.w_data.eq(Cat(mem.r_data, read[1:])),
                     self.o.valid.eq(out.r_rdy), out.r_en.eq(self.o.ready),
                     self.o.payload.eq(data.View(byte_layout(), out.r_data))]


class MacRx(wiring.Component):
    def __init__(self, max_frame: int, fifo_depth: int = 4096) -> None:
        self.max_frame = max_frame
        self.fifo_depth = fifo_depth
        super().__init__({
            "rx_dv": In(1), "rx_er": In(1), "rxd": In(8), "rx_ce": In(1, init=1),
            "o": Out(stream.Signature(byte_layout())),
            **{name: Out(32) for name in MAC_COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.frames = frames = FrameFifo(self.fifo_depth)
        wiring.connect(m, frames.o, wiring.flipped(self.o))
        # register the GMII inputs once (they come from pins / DDR buffers)
        dv, er, d, ce = Signal(), Signal(), Signal(8), Signal()
        m.d.sync += [dv.eq(self.rx_dv), er.eq(self.rx_er), d.eq(self.rxd), ce.eq(self.rx_ce)]
        crc = Signal(32, init=CRC32_INIT)
        count = Signal(16)                      # bytes after the SFD, FCS included
        delay = Signal(32)                      # the last four bytes: FCS until proven data
        bad = Signal()                          # rx_er, overflow or oversize seen
        why = Signal(range(len(MAC_COUNTERS)))
        counters = {name: getattr(self, name) for name in MAC_COUNTERS}

        def count_drop(reason: str):
            m.d.sync += counters[reason].eq(counters[reason] + 1)

        limit = self.max_frame + 4
        # what the byte count says, registered with it (each compare of the count would
        # otherwise sit in front of the frame FIFO's write and commit, the longest paths of a
        # port's receive side at 125 MHz): four bytes have followed the oldest one in ``delay``
        # (it is data), the count is at the limit, at the minimum frame
        is_data, at_limit, long_enough = Signal(), Signal(), Signal()
        # the CRC register holds the residue: compared a cycle after the register, not behind
        # the CRC update (update and compare were 8 LUT levels, too many for 125 MHz), so the
        # frame is judged in END, a cycle after DV falls
        crc_ok = Signal()
        m.d.sync += crc_ok.eq(crc == CRC_RESIDUE)
        # everything below moves only in a cycle that carries a byte (rx_ce: every cycle at
        # 1 Gb/s, every other one at 10/100 Mb/s, where a byte comes as two nibbles)
        with m.If(ce), m.FSM():
            with m.State("IDLE"):
                with m.If(dv & (d == PREAMBLE)):
                    m.next = "PREAMBLE"
            with m.State("PREAMBLE"):
                with m.If(~dv):
                    m.next = "IDLE"
                with m.Elif(d == SFD):
                    m.d.sync += [crc.eq(CRC32_INIT), count.eq(0), bad.eq(0), is_data.eq(0),
                                 at_limit.eq(0), long_enough.eq(0)]
                    m.next = "DATA"
                with m.Elif(d != PREAMBLE):
                    m.next = "SKIP"
            with m.State("DATA"):
                with m.If(dv):
                    m.d.sync += [crc.eq(crc32_update(crc, d)), delay.eq(Cat(delay[8:], d)),
                                 count.eq(count + (count != 0xFFFF)),
                                 is_data.eq(count >= 3), at_limit.eq(count >= limit - 1),
                                 long_enough.eq(count >= MIN_FRAME - 1)]
                    # a byte is data once four more have followed it
                    with m.If(is_data & ~bad):
                        with m.If(~frames.w_any):
                            m.d.sync += [bad.eq(1), why.eq(MAC_COUNTERS.index("rx_overflow"))]
                        with m.Elif(at_limit):
                            m.d.sync += [bad.eq(1), why.eq(MAC_COUNTERS.index("rx_oversize"))]
                        with m.Else():
                            m.d.comb += [frames.w_en.eq(1), frames.w_data.eq(delay[0:8])]
                    with m.If(er & ~bad):
                        m.d.sync += [bad.eq(1), why.eq(MAC_COUNTERS.index("rx_error"))]
                with m.Else():
                    m.next = "END"
            with m.State("END"):                # DV fell a cycle ago: keep or drop the frame
                m.next = "IDLE"
                with m.If(bad):
                    m.d.comb += frames.rollback.eq(1)
                    with m.Switch(why):
                        for k, name in enumerate(MAC_COUNTERS):
                            with m.Case(k):
                                count_drop(name)
                with m.Elif(~long_enough):
                    m.d.comb += frames.rollback.eq(1)
                    count_drop("rx_runt")
                with m.Elif(~crc_ok):
                    m.d.comb += frames.rollback.eq(1)
                    count_drop("rx_bad_fcs")
                with m.Else():
                    m.d.comb += frames.commit.eq(1)
                    count_drop("rx_ok")
            with m.State("SKIP"):               # not a frame we understand: wait for idle
                with m.If(~dv):
                    m.next = "IDLE"
        return m


class MacTx(wiring.Component):
    def __init__(self, max_frame: int, fifo_depth: int = 4096) -> None:
        self.max_frame = max_frame
        self.fifo_depth = fifo_depth
        super().__init__({
            "i": In(stream.Signature(byte_layout())),
            "tx_en": Out(1), "tx_er": Out(1), "txd": Out(8), "tx_ce": In(1, init=1),
            "tx_frames": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.frames = frames = FrameFifo(self.fifo_depth)
        # store and forward: a frame is committed to the FIFO at its last byte
        m.d.comb += [
            self.i.ready.eq(frames.w_any),
            frames.w_en.eq(self.i.valid & self.i.ready),
            frames.w_data.eq(self.i.payload.data),
            frames.commit.eq(self.i.valid & self.i.ready & self.i.payload.last),
        ]
        # The line side moves only in a cycle with tx_ce (every cycle at 1 Gb/s, every other one
        # at 10/100 Mb/s, where the adapter sends each byte as two nibbles): tx_en/txd then
        # hold each byte for both of its cycles.  The frame FIFO's write side is not gated.
        with m.If(self.tx_ce):
            en, d = Signal(), Signal(8)
            m.d.sync += [self.tx_en.eq(en), self.txd.eq(d), self.tx_er.eq(0)]
            # Every byte on the line comes from registers through at most a 2:1 choice and the
            # state's multiplexer: the frame FIFO's output register, the CRC register shifted a
            # byte per FCS cycle, and flags registered a cycle ahead for the compares of the
            # count (SFD next; padded to the minimum), which had been 7 LUT levels at 125 MHz.
            crc = Signal(32, init=CRC32_INIT)
            n = Signal(16)
            ended = Signal()            # the frame's last byte has been sent: padding follows
            sfd_next = Signal()         # the next preamble byte is the SFD
            padded = Signal()           # the frame is long enough to end after this byte
            # the frame FIFO's output is a register: once a frame has started it gives a byte
            # every cycle (the whole frame is in it, and its buffer is full by the SFD)
            src = frames.o
            with m.FSM():
                with m.State("IDLE"):
                    with m.If(src.valid):
                        m.d.sync += [n.eq(0), sfd_next.eq(0)]
                        m.next = "PREAMBLE"
                with m.State("PREAMBLE"):
                    m.d.comb += [en.eq(1), d.eq(Mux(sfd_next, SFD, PREAMBLE))]
                    m.d.sync += [n.eq(n + 1), sfd_next.eq(n == 6)]
                    with m.If(sfd_next):
                        m.d.sync += [n.eq(0), crc.eq(CRC32_INIT), ended.eq(0), padded.eq(0)]
                        m.next = "DATA"
                with m.State("DATA"):
                    # frame bytes, then zero padding up to 60 bytes
                    byte = Mux(ended, 0, src.payload.data)
                    m.d.comb += [en.eq(1), d.eq(byte), src.ready.eq(~ended)]
                    m.d.sync += [crc.eq(crc32_update(crc, byte)), n.eq(n + 1),
                                 padded.eq(n >= MIN_FRAME - 6)]
                    last_now = ~ended & src.payload.last
                    with m.If(last_now):
                        m.d.sync += ended.eq(1)
                    with m.If((ended | last_now) & padded):
                        m.d.sync += n.eq(0)
                        m.next = "FCS"
                with m.State("FCS"):
                    # the complement of the CRC, low byte first
                    m.d.comb += [en.eq(1), d.eq(~crc[0:8])]
                    m.d.sync += [n.eq(n + 1), crc.eq(crc >> 8)]
                    with m.If(n == 3):
                        m.d.sync += [n.eq(0), self.tx_frames.eq(self.tx_frames + 1)]
                        m.next = "GAP"
                with m.State("GAP"):
                    m.d.sync += n.eq(n + 1)
                    with m.If(n == IFG_BYTES - 1):
                        m.next = "IDLE"
        return m


class Upsizer(wiring.Component):
    """Byte stream → beats of ``params.width`` bits (``keep`` marks the bytes of a short last
    beat).  One byte per cycle in, one beat per ``lanes`` bytes out."""

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({"i": In(stream.Signature(byte_layout())),
                          "o": Out(stream.Signature(beat_layout(params)))})

    def elaborate(self, platform):
        m = Module()
        lanes = self.params.lanes
        lane = Signal(range(lanes))
        acc = Signal(self.params.width)
        keep = Signal(lanes)
        first = Signal()
        full = Signal()       # o holds a beat
        m.d.comb += [self.o.valid.eq(full), self.i.ready.eq(~full | self.o.ready)]
        with m.If(self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            b = self.i.payload
            new_acc = Signal(self.params.width)
            m.d.comb += new_acc.eq(acc)
            m.d.comb += new_acc.word_select(lane, 8).eq(b.data)
            new_keep = keep | (1 << lane)
            start = Mux(lane == 0, b.first, first)
            with m.If(b.last | (lane == lanes - 1)):
                m.d.sync += [full.eq(1), self.o.payload.data.eq(new_acc),
                             self.o.payload.keep.eq(new_keep), self.o.payload.first.eq(start),
                             self.o.payload.last.eq(b.last), lane.eq(0), keep.eq(0), acc.eq(0),
                             first.eq(0)]
            with m.Else():
                m.d.sync += [acc.eq(new_acc), keep.eq(new_keep), lane.eq(lane + 1),
                             first.eq(start)]
        return m


class Downsizer(wiring.Component):
    """Beats of ``params.width`` bits → byte stream (the bytes ``keep`` marks)."""

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({"i": In(stream.Signature(beat_layout(params))),
                          "o": Out(stream.Signature(byte_layout()))})

    def elaborate(self, platform):
        m = Module()
        lanes = self.params.lanes
        lane = Signal(range(lanes))
        beat = self.i.payload
        more = Signal()
        m.d.comb += more.eq((lane < lanes - 1) & beat.keep.bit_select(lane + 1, 1)
                            if lanes > 1 else Const(0))
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.data.eq(beat.data.word_select(lane, 8)),
            self.o.payload.first.eq(beat.first & (lane == 0)),
            self.o.payload.last.eq(beat.last & ~more),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(more):
                m.d.sync += lane.eq(lane + 1)
            with m.Else():
                m.d.comb += self.i.ready.eq(1)
                m.d.sync += lane.eq(0)
        return m


class EthPort(wiring.Component):
    """One Ethernet port: GMII in the ``eth_rx``/``eth_tx`` domains, core beats in ``sync``.

    Ports: ``rx_dv``/``rx_er``/``rxd`` (GMII receive), ``tx_en``/``tx_er``/``txd`` (GMII
    transmit), ``rx_ce``/``tx_ce`` (the cycles that carry a byte each way: always at 1 Gb/s,
    every other one at 10/100 Mb/s; see :class:`RgmiiAdapter`), ``o`` (received frames as core
    beats), ``i`` (frames to send as core beats), and the receive counters of :class:`MacRx` (in
    the ``eth_rx`` domain).
    """

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "rx_dv": In(1), "rx_er": In(1), "rxd": In(8),
            "tx_en": Out(1), "tx_er": Out(1), "txd": Out(8),
            "rx_ce": In(1, init=1), "tx_ce": In(1, init=1),
            "o": Out(stream.Signature(beat_layout(params))),
            "i": In(stream.Signature(beat_layout(params))),
            **{name: Out(32) for name in MAC_COUNTERS},
            "tx_frames": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        width = byte_layout().size
        depth = frame_fifo_depth(p.max_frame)
        m.submodules.rx = rx = DomainRenamer("eth_rx")(MacRx(p.max_frame, depth))
        m.submodules.tx = tx = DomainRenamer("eth_tx")(MacTx(p.max_frame, depth))
        m.submodules.rx_cdc = rx_cdc = fifo.AsyncFIFO(width=width, depth=16,
                                                      r_domain="sync", w_domain="eth_rx")
        m.submodules.tx_cdc = tx_cdc = fifo.AsyncFIFO(width=width, depth=16,
                                                      r_domain="eth_tx", w_domain="sync")
        m.submodules.up = up = Upsizer(p)
        m.submodules.down = down = Downsizer(p)
        m.d.comb += [rx.rx_dv.eq(self.rx_dv), rx.rx_er.eq(self.rx_er), rx.rxd.eq(self.rxd),
                     rx.rx_ce.eq(self.rx_ce), tx.tx_ce.eq(self.tx_ce),
                     self.tx_en.eq(tx.tx_en), self.tx_er.eq(tx.tx_er), self.txd.eq(tx.txd),
                     self.tx_frames.eq(tx.tx_frames)]
        for name in MAC_COUNTERS:
            m.d.comb += getattr(self, name).eq(getattr(rx, name))
        # receive: MAC (eth_rx) → async FIFO → upsizer (sync) → o
        m.d.comb += [
            rx_cdc.w_data.eq(rx.o.payload.as_value()), rx_cdc.w_en.eq(rx.o.valid),
            rx.o.ready.eq(rx_cdc.w_rdy),
            up.i.payload.eq(data.View(byte_layout(), rx_cdc.r_data)),
            up.i.valid.eq(rx_cdc.r_rdy), rx_cdc.r_en.eq(up.i.ready),
        ]
        wiring.connect(m, up.o, wiring.flipped(self.o))
        # transmit: i → downsizer (sync) → async FIFO → register → MAC (eth_tx).  The register
        # keeps the FIFO's pointer compare and distributed-RAM read out of the MAC's frame
        # FIFO logic (that path kept the port short of 125 MHz).
        wiring.connect(m, wiring.flipped(self.i), down.i)
        m.d.comb += [
            tx_cdc.w_data.eq(down.o.payload.as_value()), tx_cdc.w_en.eq(down.o.valid),
            down.o.ready.eq(tx_cdc.w_rdy),
        ]
        tx_valid = Signal()
        tx_byte = Signal(width)
        take = Signal()
        m.d.comb += [take.eq(~tx_valid | tx.i.ready), tx_cdc.r_en.eq(take),
                     tx.i.valid.eq(tx_valid), tx.i.payload.eq(data.View(byte_layout(), tx_byte))]
        with m.If(take):
            m.d.eth_tx += [tx_valid.eq(tx_cdc.r_rdy), tx_byte.eq(tx_cdc.r_data)]
        return m


class RgmiiAdapter(wiring.Component):
    """RGMII ↔ GMII.  ``rx_rise``/``rx_fall`` are the 5 bits (ctl, data[3:0]) sampled on the
    rising and falling edge of the receive clock by the board's DDR input buffers; ``tx_rise``/
    ``tx_fall`` go to the DDR output buffers.  On RGMII, ctl carries DV on the rising edge and
    DV xor ER on the falling edge (RGMII 2.0).

    1 Gb/s (``nibble`` low): a byte per cycle, its low nibble on the rising edge and its high
    nibble on the falling edge; ``rx_ce`` and ``tx_ce`` are always high.

    10/100 Mb/s (``nibble`` high, from :class:`~openslb.hw.linkspeed.LinkSpeedMeter`): the
    clock runs at 2.5/25 MHz and each cycle carries one nibble, the same on both edges, low
    nibble first.  Receive pairs the nibbles of a frame (counted from DV's rise) into bytes and
    raises ``rx_ce`` in the cycle that completes one (and in every cycle without DV, so the MAC
    sees the gap); transmit sends the low nibble of ``txd`` then the high one, and raises
    ``tx_ce`` in the second cycle, when the MAC may move on to its next byte.

    In-band status (RGMII 2.0, 3.4.1): between frames (ctl low on both edges) a PHY that has it
    enabled shows its link on RXD: bit 0 link up, bits 2:1 speed (0 = 10, 1 = 100, 2 = 1000
    Mb/s), bit 3 full duplex.  ``link``, ``speed`` and ``duplex`` hold the last status seen.

    Everything is in one domain, the port's receive clock (which also clocks its transmit side
    on the boards); instantiate it renamed to that domain.  Latency: none at 1 Gb/s (the outputs
    follow the inputs); at 10/100 Mb/s a received byte comes with its second nibble.
    """

    def __init__(self) -> None:
        super().__init__({
            "rx_rise": In(5), "rx_fall": In(5), "tx_rise": Out(5), "tx_fall": Out(5),
            "rx_dv": Out(1), "rx_er": Out(1), "rxd": Out(8), "rx_ce": Out(1),
            "tx_en": In(1), "tx_er": In(1), "txd": In(8), "tx_ce": Out(1),
            "nibble": In(1),
            "link": Out(1), "speed": Out(2), "duplex": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        dv = self.rx_rise[4]
        er = self.rx_rise[4] ^ self.rx_fall[4]
        # receive at 10/100 Mb/s: the frame's first nibble waits in `low` for its second
        half, low, low_er = Signal(), Signal(4), Signal()
        with m.If(self.nibble & dv & ~half):
            m.d.sync += [half.eq(1), low.eq(self.rx_rise[0:4]), low_er.eq(er)]
        with m.Else():
            m.d.sync += half.eq(0)
        with m.If(self.nibble):
            m.d.comb += [self.rxd.eq(Cat(low, self.rx_rise[0:4])), self.rx_dv.eq(dv),
                         self.rx_er.eq(er | low_er), self.rx_ce.eq(~dv | half)]
        with m.Else():
            m.d.comb += [self.rxd.eq(Cat(self.rx_rise[0:4], self.rx_fall[0:4])),
                         self.rx_dv.eq(dv), self.rx_er.eq(er), self.rx_ce.eq(1)]
        # transmit at 10/100 Mb/s: low nibble (phase 0), then high nibble (phase 1)
        phase = Signal()
        m.d.sync += phase.eq(self.nibble & ~phase)
        nib = Mux(phase, self.txd[4:8], self.txd[0:4])
        ctl_rise, ctl_fall = self.tx_en, self.tx_en ^ self.tx_er
        with m.If(self.nibble):
            m.d.comb += [self.tx_rise.eq(Cat(nib, ctl_rise)), self.tx_fall.eq(Cat(nib, ctl_fall)),
                         self.tx_ce.eq(phase)]
        with m.Else():
            m.d.comb += [self.tx_rise.eq(Cat(self.txd[0:4], ctl_rise)),
                         self.tx_fall.eq(Cat(self.txd[4:8], ctl_fall)), self.tx_ce.eq(1)]
        with m.If(~self.rx_rise[4] & ~self.rx_fall[4]):
            m.d.sync += [self.link.eq(self.rx_rise[0]), self.speed.eq(self.rx_rise[1:3]),
                         self.duplex.eq(self.rx_rise[3])]
        return m
