"""Register bridge: framed, CRC-checked register reads and writes from a byte stream (the UART).

Ports
-----
``rx`` : In(stream of 8 bits) — request bytes (taken whenever offered; a byte that arrives
         while a response is being sent is ignored: the host waits for each response).
``tx`` : Out(stream of 8 bits) — response bytes.
``bus`` : Out(:class:`~openslb.hw.regbank.BusSignature`) — the register bus (master side).

Protocol: :data:`openslb.hw.spec.BRIDGE_DOC` (also in docs/registers.md).  A write request is
held whole in a buffer of :data:`~openslb.hw.spec.BRIDGE_MAX_BURST` words and executed only after
its CRC has checked, one register write every two cycles.  The last executed sequence number is
kept, so a resent write is answered REPEAT instead of being executed twice.  A request whose
bytes stop for :data:`~openslb.hw.spec.BRIDGE_TIMEOUT_BYTES` byte times (``timeout`` cycles) is
abandoned without a response.

Model: :class:`openslb.model.bridge.BridgeModel` (same responses, byte for byte).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.crc import CRC32_INIT, crc32_update
from openslb.hw.regbank import BusSignature
from openslb.hw.spec import (BRIDGE_MAX_BURST, BRIDGE_SYNC_REQUEST, BRIDGE_SYNC_RESPONSE,
                             BridgeCmd, BridgeStatus)

__all__ = ["RegisterBridge"]


class RegisterBridge(wiring.Component):
    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "bus": Out(BusSignature())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = memory.Memory(shape=32, depth=BRIDGE_MAX_BURST, init=[])
        buf_w, buf_r = buf.write_port(), buf.read_port(transparent_for=())

        seq, cmd, count, status = Signal(8), Signal(8), Signal(8), Signal(8)
        addr = Signal(16)
        idx = Signal(range(BRIDGE_MAX_BURST + 1))
        nbyte = Signal(3)
        word = Signal(32)
        crc = Signal(32, init=CRC32_INIT)
        last_seq = Signal(8)
        last_valid = Signal()
        idle = Signal(range(self.timeout + 1))

        byte = self.rx.payload
        got = Signal()
        m.d.comb += [self.rx.ready.eq(1), got.eq(self.rx.valid)]
        is_write = Signal()
        m.d.comb += is_write.eq((cmd == BridgeCmd.WRITE) | (cmd == BridgeCmd.WRITE_SAME))
        word_addr = Signal(16)
        m.d.comb += word_addr.eq(addr + (idx & (cmd != BridgeCmd.WRITE_SAME).replicate(len(idx))))

        def receiving():
            """Abandon a request that stops in the middle; feed every byte to the CRC."""
            with m.If(got):
                m.d.sync += [idle.eq(0), crc.eq(crc32_update(crc, byte))]
            with m.Elif(idle == self.timeout):
                m.next = "HUNT"
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        def respond(code):
            m.d.sync += status.eq(code)
            m.next = "T_SYNC"

        def send(value, next_state, add_to_crc=True):
            m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
            with m.If(self.tx.ready):
                if add_to_crc:
                    m.d.sync += crc.eq(crc32_update(crc, value))
                next_state()

        def goto(state: str):
            def f():
                m.next = state
            return f

        m.d.comb += [buf_w.data.eq(Cat(byte, word[0:24])), buf_w.addr.eq(idx),
                     buf_r.addr.eq(idx)]

        with m.FSM():
            with m.State("HUNT"):
                with m.If(got & (byte == BRIDGE_SYNC_REQUEST)):
                    m.d.sync += [crc.eq(CRC32_INIT), nbyte.eq(0), idle.eq(0), idx.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                receiving()
                with m.If(got):
                    m.d.sync += nbyte.eq(nbyte + 1)
                    with m.Switch(nbyte):
                        with m.Case(0):
                            m.d.sync += seq.eq(byte)
                        with m.Case(1):
                            m.d.sync += cmd.eq(byte)
                        with m.Case(2):
                            m.d.sync += addr[8:16].eq(byte)
                        with m.Case(3):
                            m.d.sync += addr[0:8].eq(byte)
                        with m.Case(4):
                            m.d.sync += [count.eq(byte), nbyte.eq(0)]
                            with m.If((byte == 0) | (byte > BRIDGE_MAX_BURST)):
                                respond(BridgeStatus.BAD_LEN)
                            with m.Elif((cmd < BridgeCmd.READ) | (cmd > BridgeCmd.WRITE_SAME)):
                                respond(BridgeStatus.BAD_CMD)
                            with m.Elif(cmd == BridgeCmd.READ):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "DATA"
            with m.State("DATA"):
                receiving()
                with m.If(got):
                    m.d.sync += [word.eq(Cat(byte, word[0:24])), nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == 3):
                        m.d.comb += buf_w.en.eq(1)
                        m.d.sync += [nbyte.eq(0), idx.eq(idx + 1)]
                        with m.If(idx + 1 == count):
                            m.next = "CRC"
            with m.State("CRC"):
                # the CRC register is frozen here: compare the four received bytes with it
                with m.If(got):
                    m.d.sync += idle.eq(0)
                with m.Elif(idle == self.timeout):
                    m.next = "HUNT"
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)
                with m.If(got):
                    m.d.sync += [nbyte.eq(nbyte + 1), word.eq(Cat(byte, word[0:24]))]
                    with m.If(nbyte == 3):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [idx.eq(0), nbyte.eq(0)]
                with m.If(word != ~crc):
                    respond(BridgeStatus.BAD_CRC)
                with m.Elif(is_write & last_valid & (seq == last_seq)):
                    respond(BridgeStatus.REPEAT)
                with m.Else():
                    m.d.sync += [last_seq.eq(seq), last_valid.eq(1)]
                    with m.If(is_write):
                        m.next = "W_FETCH"
                    with m.Else():
                        respond(BridgeStatus.OK)
            with m.State("W_FETCH"):     # buffer read address is idx; data next cycle
                m.next = "W_BUS"
            with m.State("W_BUS"):
                m.d.comb += [self.bus.addr.eq(word_addr), self.bus.w_data.eq(buf_r.data),
                             self.bus.w_en.eq(1)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx + 1 == count):
                    respond(BridgeStatus.OK)
                with m.Else():
                    m.next = "W_FETCH"
            # ---- response -----------------------------------------------------------------
            with m.State("T_SYNC"):
                m.d.sync += [crc.eq(CRC32_INIT), idx.eq(0), nbyte.eq(0)]
                send(BRIDGE_SYNC_RESPONSE, goto("T_SEQ"), add_to_crc=False)
            with m.State("T_SEQ"):
                send(seq, goto("T_STATUS"))
            with m.State("T_STATUS"):
                send(status, goto("T_COUNT"))
            with m.State("T_COUNT"):
                reads = Signal()
                m.d.comb += reads.eq((status == BridgeStatus.OK) & (cmd == BridgeCmd.READ))

                def after_count():
                    m.next = "T_CRC"
                    with m.If(reads):
                        m.next = "T_READ"
                send(reads.replicate(8) & count, after_count)
            with m.State("T_READ"):
                m.d.comb += [self.bus.addr.eq(word_addr), self.bus.r_en.eq(1)]
                m.next = "T_WAIT"
            with m.State("T_WAIT"):
                with m.If(self.bus.r_valid):
                    m.d.sync += [word.eq(self.bus.r_data), nbyte.eq(0)]
                    m.next = "T_DATA"
            with m.State("T_DATA"):
                def next_byte():
                    m.d.sync += [word.eq(word << 8), nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == 3):
                        m.d.sync += [idx.eq(idx + 1), nbyte.eq(0)]
                        with m.If(idx + 1 == count):
                            m.next = "T_CRC"
                        with m.Else():
                            m.next = "T_READ"
                send(word[24:32], next_byte)
            with m.State("T_CRC"):      # the CRC register is frozen: send ~crc MSB first
                def crc_byte():
                    m.d.sync += nbyte.eq(nbyte + 1)
                    with m.If(nbyte == 3):
                        m.next = "HUNT"
                send((~crc).word_select((3 - nbyte).as_unsigned()[0:2], 8), crc_byte, add_to_crc=False)
        return m
