"""Connection table: per-flow state in block RAM, looked up beside the Maglev table.

The rules are :mod:`openslb.model.conntable`'s (learn on a flow's first packet, keep the real
while it is up, timeouts per state in ticks, FIN/RST, never evict an established flow); the entry
format is :func:`~openslb.hw.spec.conn_entry_fields`.

Ports (the selector drives the lookups; ``A`` is the cycle the selector accepts a frame)
-----
``key_hash``   : In(32) — the waiting frame's flow hash: the bucket read if it is accepted.
``start``      : In(1) — the selector accepts that frame this cycle.
``cur_hash``, ``cur_udp``, ``cur_flags`` : In — the accepted frame's key, UDP bit and TCP flags
                 (the selector's registered copy, stable from ``A + 1`` to the update).
``cur_nat``, ``cur_return`` : In(1) — the frame's entry is a NAT one (keyed by the client, the
                 VIP entry in the digest's low ``vip_bits``); it is return traffic (matches any
                 VIP, never learns).
``hit``, ``real``, ``vip`` : Out — from ``A + 5``: the flow's live entry, its real and (NAT) its
                 VIP entry.
``forward``    : In(1) — the frame's decision forwards it (drops change nothing).
``new_real``   : In(real_bits) — the real it goes to.
``new``, ``evict``, ``full`` : Out(1) — what a miss does, given ``forward`` (combinational).
``update``     : In(1) — strobe, from ``A + 8``: write the flow's entry back (the selector
                 sends it for tracked frames only).
``idle``       : In(1) — the selector is idle (it may accept a frame this cycle).
``busy_vip``   : In(1) — a frame is waiting for the selector (the scrubber leaves it the cycle).
``after_start``: In(1) — the cycle after ``start`` (the lookup's first step).
``scrub_go``   : Out(1) — the scrubber takes this cycle's read (never when the selector could
                 accept a frame, so the selector need not look at it).
``timeouts``   : In(11) × 4; ``now``, ``now_next`` In(32) — connection time now and in the
                 next cycle (:class:`~openslb.hw.ticker.Ticker`); ``flush`` In(1);
                 ``flushing`` Out(1).
``count_inc``, ``count_inc_real``, ``count_dec``, ``count_dec_real`` : Out — the update's
                 effect on the connection counts (:class:`~openslb.hw.conncount.ConnCount`):
                 the real of the entry written (every update, a refresh too), and of the live
                 or dead entry it replaces (the same real, for a refresh).
``count_inc_next``, ``count_inc_real_next`` : Out — ``count_inc`` and ``count_inc_real`` of
                 the next cycle (the inputs of their registers).
``count_scrub``, ``count_scrub_reals`` : Out — the ways a scrub clears, and their reals.
``scrub_hold`` : In(1) — the counts still have a scrub's decrements to apply: no new scrub.

Timing: a lookup reads the bucket at ``A + 1`` (address register), the RAM's data register holds
it at ``A + 3``, where the last write is forwarded if it went to the same bucket (the RAM's read
and write of one address in the same cycle are undefined on an ECP5; whether it did is
registered at ``A + 2``); ``A + 4`` holds the per-way digest compares and whether each way is
live (age within its timeout; registered per timeout kind and ORed here); ``A + 5`` the hit,
the real, the victim way and the bucket with its dead ways cleared.  The update is registered,
merged into the bucket the next cycle and written the one after (``U + 2``), before the next
lookup's data is used (``U + 3`` at the earliest): a flow learned by one frame is seen by the
very next one.  The update is merged into the bucket as read, dead ways and all, unless a scrub
of the same bucket wrote between the read and the update (the scrub of the lookup's first step,
or an idle one just before): then into the scrub's cleaned bucket, so that the update never
brings back what the scrub cleared.  A scrub writes at ``S + 6``.
Writes are at least 3 cycles apart (a lookup's at ``A + 10``, a scrub's at ``A + 7`` when it
runs inside the lookup, at ``S + 6`` in idle cycles), which is what makes forwarding the one last
write enough.

Scrubber: in idle cycles, and once in every lookup, it reads the next bucket and writes it back
with its dead ways cleared (the only place a dead way is cleared, so each is counted down once),
so a 12-bit stamp never wraps into looking young; at full load it
walks the table in ``8 × conn_buckets`` cycles and takes nothing from the lookups.  CONN_FLUSH
makes it walk the table once treating every way as dead.  The scrubber changes nothing a lookup
can see: a dead way and a free way are the same to a lookup.

Throughput: one lookup per selector round (8 cycles), each with its write-back.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.optional import OptionalBlock
from openslb.hw.picks import one_of
from openslb.hw.spec import (CONN_STAMP_BITS, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, ConnState,
                             ConnTimeout, Params, conn_entry_fields)

__all__ = ["ConnTable", "entry_layout", "opens_connection"]


def entry_layout(p: Params) -> data.StructLayout:
    """One way of a bucket (:func:`~openslb.hw.spec.conn_entry_fields`)."""
    return data.StructLayout(dict(conn_entry_fields(p)))


class ConnTable(OptionalBlock):
    #: Cycles from ``start`` to ``hit``/``real``.
    LATENCY = 5

    @staticmethod
    def ports(params: Params) -> wiring.Signature:
        p = params
        return wiring.Signature({
            "key_hash": In(32),
            "start": In(1),
            "cur_hash": In(32),
            "cur_udp": In(1),
            "cur_flags": In(8),
            "cur_nat": In(1),
            "cur_return": In(1),
            "hit": Out(1),
            "real": Out(p.real_bits),
            "vip": Out(p.vip_bits),
            "forward": In(1),
            "new_real": In(p.real_bits),
            "new": Out(1),
            "evict": Out(1),
            "full": Out(1),
            "update": In(1),
            "idle": In(1),
            "busy_vip": In(1),
            "after_start": In(1),
            "scrub_go": Out(1),
            "timeouts": In(11).array(len(ConnTimeout)),
            "now": In(32),
            "now_next": In(32),
            "flush": In(1),
            "flushing": Out(1),
            "scrub_hold": In(1),
            "count_inc": Out(1),
            "count_inc_real": Out(p.real_bits),
            "count_inc_next": Out(1),
            "count_inc_real_next": Out(p.real_bits),
            "count_dec": Out(1),
            "count_dec_real": Out(p.real_bits),
            "count_scrub": Out(p.conn_ways),
            "count_scrub_reals": Out(p.real_bits).array(p.conn_ways),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        ways = p.conn_ways
        bbits = p.conn_bucket_bits
        entry = entry_layout(p)
        bucket_layout = data.ArrayLayout(entry, ways)
        m.submodules.ram = ram = BlockRam(bucket_layout.size, p.conn_buckets)

        # ---- write port: one registered write, remembered for forwarding ---------------------
        wr_en = Signal()
        wr_bucket = Signal(bbits)
        wr_word = Signal(bucket_layout)
        wr_seen = Signal()       # a write has happened (the forwarding compare is meaningful)
        m.d.sync += wr_en.eq(0)
        m.d.comb += [ram.w_en.eq(wr_en), ram.w_addr.eq(wr_bucket), ram.w_data.eq(wr_word)]

        # ---- scrubber ------------------------------------------------------------------------
        # One bucket at a time: in an idle cycle with no frame waiting, and in the cycle after
        # each lookup starts (its read is issued by then and its write comes 9 cycles later:
        # the scrub's write falls between the previous lookup's and this one's, at least 3
        # cycles from each), so it keeps walking at full load too.
        scrub_ptr = Signal(bbits)
        scrub_busy = Signal()           # a scrub read is on its way to its write
        m.d.comb += self.scrub_go.eq(~scrub_busy & ~self.scrub_hold
                                     & ((self.idle & ~self.busy_vip) | self.after_start))
        with m.If(self.scrub_go):
            m.d.sync += [scrub_busy.eq(1), scrub_ptr.eq(scrub_ptr + 1)]
            with m.If(scrub_ptr == (1 << bbits) - 1):
                m.d.sync += self.flushing.eq(0)       # a flush ends after one whole walk
        with m.If(self.flush):
            m.d.sync += [self.flushing.eq(1), scrub_ptr.eq(0)]

        # ---- read: address (A+1), RAM data register (A+3) ----------------------------------------
        rd_bucket = Signal(bbits)
        m.d.sync += rd_bucket.eq(Mux(self.scrub_go, scrub_ptr, self.key_hash[0:bbits]))
        m.d.comb += ram.r_addr.eq(rd_bucket)
        # the operation in each stage: bit k set = cycle A+1+k holds a read (scrub: a scrub's)
        stage = Signal(3)
        scrub = Signal(3)
        flush_op = Signal(3)
        # the bucket each stage holds (the address register is the first)
        bucket_at = [rd_bucket] + [Signal(bbits, name=f"bucket_s{k}") for k in (1, 2)]
        m.d.sync += [
            stage.eq(Cat(self.start | self.scrub_go, stage[0:2])),
            scrub.eq(Cat(self.scrub_go, scrub[0:2])),
            flush_op.eq(Cat(self.scrub_go & self.flushing, flush_op[0:2])),
            bucket_at[1].eq(bucket_at[0]),
            bucket_at[2].eq(bucket_at[1]),
        ]
        # A+3: the bucket as the RAM holds it, or as the last write left it.  Whether the last
        # write went to this bucket is decided a cycle ahead, against the write register as it
        # will be (a write being issued now, or the one before), so that the word's select
        # comes straight from a register: the compare and its fan-out over the whole bucket
        # were the front of the path through the digest compares.
        # (each possible next write is compared, at once; see the write port below)
        forwarded = Signal()
        word = Signal(bucket_layout)
        fwd_update, fwd_scrub, fwd_last = Signal(), Signal(), Signal()
        m.d.sync += forwarded.eq(fwd_update | fwd_scrub | fwd_last)
        m.d.comb += word.eq(Mux(forwarded, wr_word, ram.r_data))
        digest = self.cur_hash[bbits:31]
        vb = p.vip_bits
        # A+4: per way, the digest compare and whether the way is live (in use, younger than
        # the timeout of its kind, no flush), registered (liveness per kind): the age compare
        # here, beside the digest compare, not in front of the hit and the victim choice
        q_word = Signal(bucket_layout)
        q_match = Signal(ways)
        q_clash = Signal(ways)    # a NAT entry of the same client for another VIP
        live = Signal(ways)
        q_scrub = Signal()
        q_lookup = Signal()
        q_bucket = Signal(bbits)
        stamp_now = self.now[0:CONN_STAMP_BITS]
        # A way is live when its age, (now - stamp) mod 2**CONN_STAMP_BITS, is within its
        # kind's timeout T: when its stamp lies in the cyclic window [now - T, now].  The
        # window's start and whether it wraps past zero are registered per kind, in step with
        # ``now`` (from ``now_next``), so the judgement of a way is two compares of its stamp
        # side by side and a pick by its kind, not a subtraction, a timeout picked by its kind
        # and a compare in a row (that row set the path through the liveness bits).
        kinds = len(ConnTimeout)
        stamp_next = self.now_next[0:CONN_STAMP_BITS]
        since = [Signal(CONN_STAMP_BITS, name=f"live_since{k}") for k in range(kinds)]
        wraps = Signal(kinds)
        m.d.sync += [since[k].eq(stamp_next - self.timeouts[k]) for k in range(kinds)]
        m.d.sync += [wraps[k].eq(stamp_next < self.timeouts[k]) for k in range(kinds)]
        m.d.sync += [q_word.eq(word), q_scrub.eq(stage[2] & scrub[2]),
                     q_lookup.eq(stage[2] & ~scrub[2]),
                     q_bucket.eq(bucket_at[2])]
        stored = data.View(bucket_layout, ram.r_data)

        def judge(e) -> tuple:
            """Way ``e``'s match, clash and liveness bits."""
            same_client = ((e.digest[vb:] == digest[vb:]) & (e.udp == self.cur_udp)
                           & (e.nat == self.cur_nat))
            same_vip = e.digest[0:vb] == digest[0:vb]
            not_after_now = e.stamp <= stamp_now
            not_before = [e.stamp >= since[k] for k in range(kinds)]
            in_window = [Mux(wraps[k], not_before[k] | not_after_now,
                             not_before[k] & not_after_now) for k in range(kinds)]
            # Which timeout applies (a UDP flow's, else its TCP state's; a free way has none)
            # is decoded per kind beside the compares, and "no flush" is in each kind's bit,
            # so each kind's term can be one LUT of four inputs and liveness an OR of four.  (A
            # kind number picked among the windows behind the compares.  Synthesis still maps
            # this deeper than that: docs/pipeline.md, "The fourth round".)
            of_kind = {
                ConnTimeout.SYN: ~e.udp & (e.state == ConnState.SYN),
                ConnTimeout.OPEN: ~e.udp & (e.state == ConnState.OPEN),
                ConnTimeout.CLOSING: ~e.udp & (e.state == ConnState.CLOSING),
                ConnTimeout.UDP: e.udp & (e.state != ConnState.FREE),
            }
            terms = Cat(*[of_kind[k] & ~flush_op[2] & in_window[k] for k in ConnTimeout])
            return (same_client & (same_vip | self.cur_return),
                    same_client & ~same_vip & self.cur_nat,
                    terms)

        # (each way is judged twice, as the RAM read it and as the last write left it, and
        # the forwarding select picks among the registered bits, not in front of the compares;
        # liveness is registered per kind and ORed in A+4, so that the compares' carry chains
        # are followed by one term and the select: with the OR of the four kinds in front of
        # the register it was the path of 7a345f8, seed 1, 9.80 ns)
        live_terms = [Signal(kinds, name=f"live_terms{w}") for w in range(ways)]
        for w in range(ways):
            for q, from_ram, from_write in zip((q_match[w], q_clash[w], live_terms[w]),
                                               judge(stored[w]), judge(wr_word[w])):
                m.d.sync += q.eq(Mux(forwarded, from_write, from_ram))
            m.d.comb += live[w].eq(live_terms[w].any())

        # A+4 → A+5: the hit, the victim, the cleaned bucket
        hits = Signal(ways)
        dead = Signal(ways)
        half_open = Signal(ways)
        clashes = Signal(ways)
        m.d.comb += [hits.eq(live & q_match), dead.eq(~live), clashes.eq(live & q_clash)]
        for w in range(ways):
            m.d.comb += half_open[w].eq(live[w] & (q_word[w].state == ConnState.SYN)
                                        & ~q_word[w].udp)
        cleaned = Signal(bucket_layout)
        for w in range(ways):
            m.d.comb += cleaned[w].eq(Mux(live[w], q_word[w], 0))
        # the ways a scrub clears: dead, but not free yet (each counted down once, here)
        clearing = Signal(ways)
        m.d.comb += clearing.eq(Cat(*[q_word[w].state != ConnState.FREE for w in range(ways)])
                                & dead)

        # results of a lookup (held until its update)
        r_hit_way = Signal(range(ways))
        r_free_way = Signal(range(ways))
        r_evict_way = Signal(range(ways))
        r_clash_way = Signal(range(ways))
        r_has_free = Signal()
        r_has_evict = Signal()
        r_has_clash = Signal()
        r_state = Signal(2)
        r_bucket = Signal(bbits)
        r_base = Signal(bucket_layout)   # the bucket the update is merged into
        with m.If(q_lookup):
            m.d.sync += [self.hit.eq(hits.any()), r_has_free.eq(dead.any()),
                         r_has_evict.eq(half_open.any()), r_has_clash.eq(clashes.any()),
                         r_bucket.eq(q_bucket)]
            # At most one way hits: a flow is learned only when it has no live entry, and a dead
            # entry never comes back to life (the scrubber clears it before its stamp wraps);
            # a return frame, which matches a client's NAT entry for any VIP, finds at most one
            # as a client's new NAT flow takes over its entry for another VIP.  So the hit way's
            # fields are an AND-OR, with no priority chain behind the compare.
            m.d.sync += [
                self.real.eq(one_of([(hits[w], q_word[w].real) for w in range(ways)])),
                r_state.eq(one_of([(hits[w], q_word[w].state) for w in range(ways)])),
                r_hit_way.eq(one_of([(hits[w], w) for w in range(ways)])),
                self.vip.eq(one_of([(hits[w], q_word[w].digest[0:vb]) for w in range(ways)])),
            ]
            # the first dead way, half-open way and clashing way (lowest way wins)
            for w in reversed(range(ways)):
                with m.If(dead[w]):
                    m.d.sync += r_free_way.eq(w)
                with m.If(half_open[w]):
                    m.d.sync += r_evict_way.eq(w)
                with m.If(clashes[w]):
                    m.d.sync += r_clash_way.eq(w)
        # a scrub's cleaned bucket (A+5), written back (A+6) when it cleared a way
        s_valid = Signal()
        s_clear = Signal(ways)
        s_bucket = Signal(bbits)
        s_clean = Signal(bucket_layout)
        s_reals = [Signal(p.real_bits, name=f"s_real{w}") for w in range(ways)]
        m.d.sync += [s_valid.eq(q_scrub), s_bucket.eq(q_bucket), s_clean.eq(cleaned),
                     s_clear.eq(clearing)]
        m.d.sync += [s_reals[w].eq(q_word[w].real) for w in range(ways)]
        s_write = Signal()
        m.d.comb += s_write.eq(s_valid & s_clear.any())
        with m.If(s_write):
            m.d.sync += [wr_en.eq(1), wr_seen.eq(1), wr_bucket.eq(s_bucket), wr_word.eq(s_clean)]
        with m.If(s_valid):
            m.d.sync += scrub_busy.eq(0)
        m.d.comb += [self.count_scrub.eq(Mux(s_valid, s_clear, 0))]
        m.d.comb += [self.count_scrub_reals[w].eq(s_reals[w]) for w in range(ways)]

        # The update is merged into the bucket as the RAM holds it when the update is written.
        # A lookup keeps its bucket's dead ways (a dead way and a free way are the same to it),
        # but a scrub of the same bucket may write between the lookup's read and its update (the
        # scrub of the lookup's first step, or an idle one just before the frame came): then
        # the scrub's cleaned bucket is the base, so that the update does not bring back what
        # the scrub cleared (and counted down).
        # (the three bucket compares are made a cycle ahead, against what the registers will
        # hold, so that the base's load enable and selects, a fan-out of hundreds, come from
        # flip-flops: behind the compares they put some 500 endpoints of 7a345f8 after 6.4 ns)
        u_valid = Signal()      # the update register holds an update (below)
        s_same_q = Signal()     # s_write & (s_bucket == q_bucket)
        wr_same_q = Signal()    # wr_en & (wr_bucket == q_bucket)
        s_same_r = Signal()     # s_write & (s_bucket == r_bucket)
        s_write_next = q_scrub & clearing.any()
        m.d.sync += [
            s_same_q.eq(s_write_next & (q_bucket == bucket_at[2])),
            wr_same_q.eq(Mux(u_valid, r_bucket == bucket_at[2],
                             s_write & (s_bucket == bucket_at[2]))),
            # (a scrub is never in A+4 beside a lookup, so r_bucket is not loaded then)
            s_same_r.eq(s_write_next & (q_bucket == r_bucket)),
        ]
        with m.If(q_lookup):
            with m.If(s_same_q):
                m.d.sync += r_base.eq(s_clean)
            with m.Elif(wr_same_q):
                m.d.sync += r_base.eq(wr_word)
            with m.Else():
                m.d.sync += r_base.eq(q_word)
        with m.Elif(s_same_r):
            m.d.sync += r_base.eq(s_clean)

        # ---- the update: learn or refresh --------------------------------------------------------
        flags = self.cur_flags
        syn_only = Signal()
        starts = Signal()
        m.d.comb += [syn_only.eq(opens_connection(flags)),
                     starts.eq(self.cur_udp | syn_only)]
        learn = Signal()
        # (a NAT flow takes over its client's entry for another VIP first, so that a return
        # frame, which matches any VIP, finds at most one)
        m.d.comb += [
            learn.eq(self.forward & ~self.hit & starts),
            self.new.eq(learn & (r_has_clash | r_has_free | r_has_evict)),
            self.evict.eq(learn & (r_has_clash | (~r_has_free & r_has_evict))),
            self.full.eq(learn & ~r_has_clash & ~r_has_free & ~r_has_evict),
        ]
        base = Signal(2)
        m.d.comb += base.eq(Mux(self.hit, r_state, ConnState.FREE))
        state = Signal(2)
        with m.If(self.cur_udp):
            m.d.comb += state.eq(ConnState.OPEN)
        with m.Elif((flags & (TCP_FIN | TCP_RST)).any()):
            m.d.comb += state.eq(ConnState.CLOSING)
        with m.Elif(syn_only):
            m.d.comb += state.eq(Mux((base == ConnState.FREE) | (base == ConnState.CLOSING),
                                     ConnState.SYN, base))
        with m.Elif((base == ConnState.SYN) & (flags & TCP_ACK).any()):
            m.d.comb += state.eq(ConnState.OPEN)
        with m.Else():
            m.d.comb += state.eq(base)
        fresh = Signal(entry)
        m.d.comb += [fresh.state.eq(state), fresh.udp.eq(self.cur_udp), fresh.stamp.eq(stamp_now),
                     fresh.real.eq(self.new_real), fresh.digest.eq(digest),
                     fresh.nat.eq(self.cur_nat)]
        # the update is registered (entry, way, bucket), then merged into the base bucket
        u_way = Signal(range(ways))
        u_entry = Signal(entry)
        u_valid_next = Signal()
        m.d.comb += u_valid_next.eq(self.update & self.forward & (self.hit | self.new))
        m.d.sync += [u_valid.eq(u_valid_next),
                     u_way.eq(Mux(self.hit, r_hit_way,
                                  Mux(r_has_clash, r_clash_way,
                                      Mux(r_has_free, r_free_way, r_evict_way)))),
                     u_entry.eq(fresh)]
        with m.If(u_valid):
            m.d.sync += [wr_en.eq(1), wr_seen.eq(1), wr_bucket.eq(r_bucket)]
            for w in range(ways):
                m.d.sync += wr_word[w].eq(Mux(u_way == w, u_entry, r_base[w]))
        # whether the write register as it will be next cycle holds the bucket of the read a
        # stage behind (a lookup's update wins over a scrub's write, as above)
        m.d.comb += [
            fwd_update.eq(u_valid & (r_bucket == bucket_at[1])),
            fwd_scrub.eq(~u_valid & s_write & (s_bucket == bucket_at[1])),
            fwd_last.eq(~u_valid & ~s_write & wr_seen & (wr_bucket == bucket_at[1])),
        ]
        # the connection counts: the entry written counts up, the one it replaces down (both
        # when they name one real: the increment then comes straight from a register, and the
        # decrement follows it before the next lookup reads the counts)
        old = Signal(entry)
        m.d.comb += old.eq(r_base[u_way])
        m.d.comb += [self.count_inc.eq(u_valid), self.count_inc_real.eq(u_entry.real),
                     self.count_inc_next.eq(u_valid_next),
                     self.count_inc_real_next.eq(fresh.real),
                     self.count_dec.eq(u_valid & (old.state != ConnState.FREE)),
                     self.count_dec_real.eq(old.real)]
        return m


def opens_connection(flags):
    """A TCP SYN without ACK (``flags`` is the TCP flags byte): a client opening a connection."""
    return (flags & TCP_SYN).any() & ~(flags & TCP_ACK).any()
