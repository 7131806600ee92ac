"""The dispatch core: capture → parser (with the hasher, the VIP matcher and the classifier
beside it) → selector → rewriter, with the packet buffer, the decision queue, the counters and
the register bank.

Ports
-----
``i``   : In(stream of :func:`~openslb.hw.layouts.beat_layout`) — frames in.
``i_port``: In(1) — the :class:`~openslb.hw.spec.IngressPort` of the frame on ``i``: the client
          side, or the server side (NAT return traffic, the reals' ARP requests).
``o``   : Out(stream of :func:`~openslb.hw.layouts.egress_beat_layout`) — frames out, each
          tagged with its egress port (CLIENT / SERVER / HOST).
``bus`` : In(:class:`~openslb.hw.regbank.BusSignature`) — the register bus.

Store and forward: a frame's decision needs its length (IPv4 total length and truncation checks),
so a frame leaves after its last beat has arrived.  Headers are processed beside the payload,
which waits in the packet buffer (two maximum-size frames), so the output runs at one beat per
cycle with no bubble between frames at any size.  First-beat-in to first-beat-out latency is
``beats(frame) + 16`` cycles for a VIP frame (see ``make bench``).
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from openslb.hw.capture import Capture
from openslb.hw.counters import Counters
from openslb.hw.layouts import (DECISION_FIELDS, beat_layout, decision_layout, egress_beat_layout,
                                meta_layout, register_view)
from openslb.hw.packetbuf import PacketBuffer
from openslb.hw.parser import Parser
from openslb.hw.regbank import BusSignature, RegBank
from openslb.hw.regfifo import RegisteredFifo
from openslb.hw.rewriter import Rewriter
from openslb.hw.selector import Selector, mark_new_flow
from openslb.hw.spec import (DEFAULT_PARAMS, ID_MAGIC, MAC_COUNTER_NAMES, MAC_PORTS, Params,
                             params_word)

__all__ = ["DispatchCore"]

DECISION_QUEUE = 16
#: Records between the parser and the selector.  The header pipeline in front of it never
#: stalls (its ready chain would otherwise be the longest path of the design): the capture
#: stage only releases a record when this queue has room for every record still in flight.
LOOKUP_QUEUE = 32
#: Records in flight between the capture stage and the lookup queue (capture output register,
#: parser stages), plus one for the registered credit.
IN_FLIGHT = 1 + Parser.LATENCY + 1


def _through_queue(m: Module, src, queue, dst, layout, room=None, w_data=None) -> None:
    """Connect stream ``src`` → ``queue`` (a FIFO of packed payloads) → ``dst``.
    ``room``, when given, replaces the queue's own ``w_rdy`` as ``src.ready`` (a constant for a
    credit-guaranteed queue, a register for a queue whose level must stay off ``src``'s paths).
    ``w_data``, when given, is what is queued instead of ``src``'s whole payload."""
    m.d.comb += [
        queue.w_data.eq(src.payload.as_value() if w_data is None else w_data.as_value()),
        queue.w_en.eq(src.valid if room is None else src.valid & room),
        src.ready.eq(queue.w_rdy if room is None else room),
        dst.payload.eq(data.View(layout, queue.r_data)),
        dst.valid.eq(queue.r_rdy),
        queue.r_en.eq(dst.ready),
    ]


class DispatchCore(wiring.Component):
    def __init__(self, params: Params = DEFAULT_PARAMS) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(beat_layout(params))),
            # the IngressPort of the frame on `i` (held by the source for the whole frame)
            "i_port": In(1),
            "o": Out(stream.Signature(egress_beat_layout(params))),
            "bus": In(BusSignature()),
            # MAC receive counters from a board top (tied to 0 by default)
            "mac_stat": In(32).array(MAC_PORTS * len(MAC_COUNTER_NAMES)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.regs = regs = RegBank(p)
        m.submodules.capture = capture = Capture(p)
        m.submodules.parser = parser = Parser(p)
        m.submodules.selector = selector = Selector(p)
        m.submodules.rewriter = rewriter = Rewriter(p)
        m.submodules.counters = counters = Counters(p)

        meta = meta_layout(p)
        m.submodules.packets = packets = PacketBuffer(p)
        # first-word-fall-through queues whose read side is a register: the selector and the
        # rewriter decide from registers, not from a RAM read
        decision = decision_layout(p)
        m.submodules.decisions = decisions = RegisteredFifo(decision.size, DECISION_QUEUE)

        # register bus and the values the design presents
        wiring.connect(m, wiring.flipped(self.bus), regs.bus)
        m.d.comb += [
            regs.id.eq(ID_MAGIC),
            regs.params.eq(params_word(p)),
            regs.active_bank.eq(selector.active_bank),
        ]

        # packet path: input → capture → buffer → rewriter → output
        connect(m, wiring.flipped(self.i), capture.i)
        m.d.comb += capture.i_port.eq(self.i_port)
        connect(m, capture.buf, packets.i)
        connect(m, packets.o, rewriter.buf)
        connect(m, rewriter.o, wiring.flipped(self.o))

        # header path: capture → parser (+ hasher, VIP matcher, classifier) → queue → selector →
        # queue → rewriter
        connect(m, capture.o, parser.i)
        m.submodules.lookups = lookups = RegisteredFifo(meta.size, LOOKUP_QUEUE)
        room = Signal(init=1)
        m.d.sync += room.eq(lookups.level <= LOOKUP_QUEUE - IN_FLIGHT - 1)
        # COMMIT waits until no record is between the capture stage and the rewriter (new
        # records are held back meanwhile), so every frame is classified, hashed, looked up and
        # rewritten under one configuration: all of the old one or all of the new one.
        commit_pending = Signal()
        in_flight = Signal(range(LOOKUP_QUEUE + DECISION_QUEUE + IN_FLIGHT + 8))
        entered = capture.o.valid & capture.o.ready
        # (a record that leaves is counted out a cycle late, which only delays a commit by one
        # cycle, so that the output's handshake stays off the counter's adder)
        left = Signal()
        m.d.sync += [left.eq(rewriter.dec.valid & rewriter.dec.ready),
                     in_flight.eq(in_flight + entered - left)]
        # (no record in the capture stage's output register either: a stronger condition than
        # "none enters now", which new records cannot keep false for long, as the capture
        # releases none while a commit is pending, and which reads registers only)
        # The commit itself is a register, set in the cycle after the pipeline is found empty
        # (it stays empty: the pending commit still holds new records back), so the load
        # enable of every committed register comes straight from a flip-flop, with no compare
        # or handshake in front of its fan-out of thousands.
        commit_now = Signal()
        m.d.sync += commit_now.eq(commit_pending & (in_flight == 0) & ~capture.o.valid
                                  & ~commit_now)
        with m.If(regs.commit_stb):
            m.d.sync += commit_pending.eq(1)
        with m.Elif(commit_now):
            m.d.sync += commit_pending.eq(0)
        m.d.comb += capture.room.eq(room & ~commit_pending)
        # credit-guaranteed: the queue always has room, so the header path is never held
        # (each record marked on its way in: a new flow, and its group's metric)
        marked = Signal(meta)
        m.d.comb += marked.eq(parser.o.payload)
        # the stateless profile tracks nothing, whatever CONN_CTRL holds
        conn_enable = (register_view("CONN_CTRL", regs.conn_ctrl).enable if p.stateful
                       else C(0, 1))
        mark_new_flow(m, marked, conn_enable,
                      [register_view("GROUP_METRIC", regs.group_metric[g]).metric
                       for g in range(p.n_groups)])
        _through_queue(m, parser.o, lookups, selector.i, meta, room=1, w_data=marked)
        # The selector sees the decision queue's room as a register (two places of margin: a
        # write may be under way and the register lags a cycle), so no handshake path runs
        # between the queue's level and the selector's control.
        decision_room = Signal()
        decision_room_next = Signal()
        m.d.comb += [decision_room_next.eq(decisions.level <= DECISION_QUEUE - 3),
                     selector.o_ready_next.eq(decision_room_next)]
        m.d.sync += decision_room.eq(decision_room_next)
        # only the fields the rewriter reads are queued (fewer bits: a narrower RAM whose write
        # enable reaches fewer slices)
        queued = Signal(decision)
        m.d.comb += [getattr(queued, name).eq(getattr(selector.o.payload, name))
                     for name in DECISION_FIELDS if name != "real_mac"]
        # (leastconns' swap of the real's MAC is resolved here, off the compare's fan-out)
        m.d.comb += queued.real_mac.eq(Mux(selector.o_mac_swap, selector.o_mac_alt,
                                           selector.o.payload.real_mac))
        _through_queue(m, selector.o, decisions, rewriter.dec, decision, room=decision_room,
                       w_data=queued)

        # configuration
        m.d.comb += [
            parser.own_ip.eq(regs.own_ip),
            parser.miss_to_host.eq(register_view("CTRL", regs.ctrl).miss_to_host),
            parser.key.eq(Cat(*reversed([getattr(regs, f"rss_key{k}") for k in range(10)]))),
            parser.table_size.eq(regs.table_size),
            selector.health.eq(Cat(*regs.health) if isinstance(regs.health, list)
                               else regs.health),
            selector.commit.eq(commit_now),
            regs.commit.eq(commit_now),
            selector.table_entry_stb.eq(regs.table_entry_stb),
            selector.table_raddr_stb.eq(regs.table_raddr_stb),
            regs.table_rdata.eq(selector.table_rdata),
            selector.w_data.eq(regs.w_data),
            selector.table_addr_stb.eq(regs.table_addr_stb),
            selector.table_data_stb.eq(regs.table_data_stb),
            selector.real_mac_stb.eq(regs.real_mac_lo_stb),
            selector.real_sel.eq(regs.real_sel),
            selector.real_mac_hi.eq(regs.real_mac_hi),
            selector.real_limit_stb.eq(regs.real_limit_stb),
            selector.member_sel.eq(regs.member_sel),
            selector.member_data_stb.eq(regs.member_data_stb),
            regs.real_conns.eq(selector.real_conns),
            selector.table_size.eq(regs.table_size),
            rewriter.own_mac.eq(Cat(regs.own_mac_lo,
                                    register_view("OWN_MAC_HI", regs.own_mac_hi).mac_hi)),
            rewriter.gw_mac.eq(Cat(regs.client_gw_mac_lo,
                                   register_view("CLIENT_GW_MAC_HI",
                                                 regs.client_gw_mac_hi).mac_hi)),
            rewriter.real_ip_stb.eq(regs.real_ip_stb),
            rewriter.real_sel.eq(regs.real_sel),
            rewriter.w_data.eq(regs.w_data),
            selector.conn_enable.eq(conn_enable),
            selector.conn_tick_cycles.eq(regs.conn_tick_cycles),
            selector.conn_tick.eq(regs.conn_tick_stb),
            selector.conn_flush.eq(regs.conn_flush_stb),
            regs.conn_now.eq(selector.conn_now),
            regs.conn_status.eq(selector.conn_flushing),
            selector.pbind_timeout.eq(register_view("PBIND_TIMEOUT", regs.pbind_timeout).ticks),
            parser.pbind_prefix.eq(register_view("PBIND_PREFIX", regs.pbind_prefix).bytes),
        ]
        m.d.comb += [selector.conn_timeouts[k].eq(register_view("CONN_TIMEOUT",
                                                                regs.conn_timeout[k]).ticks)
                     for k in range(len(regs.conn_timeout))]
        for k in range(p.n_vips):
            m.d.comb += [parser.vip_ip[k].eq(regs.vip_ip[k]),
                         parser.vip_service[k].eq(regs.vip_service[k]),
                         parser.vip_group[k].eq(regs.vip_group[k]),
                         parser.vip_pbind[k].eq(regs.vip_pbind[k]),
                         parser.vip_rport[k].eq(regs.vip_rport[k]),
                         rewriter.vip_ip[k].eq(regs.vip_ip[k]),
                         rewriter.vip_service[k].eq(regs.vip_service[k])]
        for g in range(p.n_groups):
            m.d.comb += selector.group_backup[g].eq(regs.group_backup[g])

        # counters watch decisions as they enter the queue (one per frame)
        m.d.comb += [
            counters.ev_valid.eq(selector.o.valid & selector.o.ready),
            counters.stat_ev_valid.eq(selector.loaded),
            counters.ev.eq(selector.o.payload),
            counters.snapshot.eq(regs.snapshot_stb),
            counters.stat_sel.eq(regs.stat_sel_stb),
            counters.w_data.eq(regs.w_data),
        ]
        m.d.comb += [counters.counter_index.eq(regs.counter_index),
                     regs.counter.eq(counters.counter)]
        for k in range(4):
            m.d.comb += regs.stat[k].eq(counters.stat[k])
        for k, word in enumerate(self.mac_stat):
            m.d.comb += regs.mac_stat[k].eq(word)
        return m
