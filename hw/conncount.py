"""Connection counts: per real, the connection-table entries that name it, and its limit.

What ``leastconns`` compares and ``maxcon`` enforces (docs/pipeline.md, "Connection-aware
metrics").  The count of a real moves with the writes of the connection table
(:class:`~openslb.hw.conntable.ConnTable` sends the events): +1 when an entry naming it is
written over a free way or over another real's entry, −1 when its entry is cleared (by the
scrubber, or written over by another flow).  An entry that has timed out therefore counts until
it is cleared: the model's count (live entries) and this one agree once the scrubber has walked
the table since the last tick.

Ports
-----
``inc``, ``inc_real``, ``dec``, ``dec_real`` : In — a lookup's write-back: one cycle, at most
                 one of each (the connection table's update cycle).
``scrub``      : In(ways) — a scrub's write clears these ways (one cycle), whose reals are
                 ``scrub_reals``.
``busy``       : Out(1) — scrub decrements are still pending: the scrubber waits.
``rd_real``    : In(real_bits) × 2 — reals whose ``count`` is read (no latency: distributed
                 RAM).
``weight_real`` : In(real_bits) × 2 — reals whose ``weight`` is read (latency 2: block RAM).
``full``       : Out(n_reals) — bit r: real r has a limit and is at it.
``limit_stb``, ``w_data``, ``real_sel`` : REAL_LIMIT writes ``{weight, maxcon}`` of ``real_sel``.
``sel_conns``  : Out(32) — REAL_CONNS: ``{full[31], conns}`` of ``real_sel``, a few cycles late.

Timing: one operation a cycle (the lookup's increment, a REAL_LIMIT write's refresh, the
lookup's decrement, the scrub's decrements), each a read-modify-write of one real's count and
full bit in three steps: pick (the increment comes straight from the connection table's update,
the rest wait in registers); read the count and the limit from distributed RAM into registers,
the limit as the threshold the count must reach for the real to be full after the operation;
then count one up or down, compare and write (with the result of the operation just ahead
forwarded when it names the same real).  No RAM read feeds logic in its own cycle, and the
compare does not wait for the sum.  A lookup's increment is in the RAMs and the full bits three
cycles after its update cycle, its decrement four; the next lookup, which starts in the update's
cycle and reads counts and full bits in its step 5, sees both (a REAL_LIMIT write's refresh
picked just before can delay the decrement by a cycle: the write's real is changing anyway).  A
REAL_LIMIT write sets the limit and the weight at once and the real's full bit three to five
cycles later (its refresh).
"""

from __future__ import annotations

from amaranth import Array, C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.bram import BlockRam
from openslb.hw.spec import MAXCON_BITS, WEIGHT_BITS, Params

__all__ = ["ConnCount"]


def _one_hot(m: Module, index, n: int, enable, name: str) -> Signal:
    """``enable`` at bit ``index`` of ``n``, from two predecoded halves of the index."""
    bits = (n - 1).bit_length()
    lo_bits = bits // 2
    lo = Signal(1 << lo_bits, name=f"{name}_lo")
    hi = Signal(1 << (bits - lo_bits), name=f"{name}_hi")
    m.d.comb += [lo.eq(Mux(enable, 1, 0) << index[0:lo_bits]),
                 hi.eq(C(1, 1) << index[lo_bits:bits])]
    out = Signal(n, name=f"{name}_sel")
    m.d.comb += [out[r].eq(lo[r & ((1 << lo_bits) - 1)] & hi[r >> lo_bits]) for r in range(n)]
    return out


class ConnCount(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = p = params
        super().__init__({
            "inc": In(1), "inc_real": In(p.real_bits),
            "dec": In(1), "dec_real": In(p.real_bits),
            "scrub": In(p.conn_ways), "scrub_reals": In(p.real_bits).array(p.conn_ways),
            "busy": Out(1),
            "rd_real": In(p.real_bits).array(2),
            "count": Out(p.conn_count_bits).array(2),
            "weight_real": In(p.real_bits).array(2),
            "weight": Out(WEIGHT_BITS).array(2),
            "full": Out(p.n_reals),
            "limit_stb": In(1), "w_data": In(32), "real_sel": In(p.real_bits),
            "sel_conns": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        ways = p.conn_ways
        cbits = p.conn_count_bits
        # The counts and the limits are in distributed RAM: the engine reads them in its step 1
        # and computes with them in step 2, which a block RAM's 5.8 ns from clock to data would
        # not leave room for (synthesis would take one, the read address being a register).
        distributed = {"ram_style": "distributed"}
        m.submodules.counts = counts = memory.Memory(shape=unsigned(cbits), depth=p.n_reals,
                                                     init=[], attrs=distributed)
        # a limit is kept in the counts' width, saturated (a count never reaches the top value:
        # the table holds fewer flows, just as it never reaches a larger limit), with the limit
        # less one and plus one beside it (the thresholds of counting up and down), so that no
        # sum follows the RAM read in the engine
        thresholds = data.StructLayout({"limited": 1, "below": cbits, "limit": cbits,
                                        "above": cbits})
        m.submodules.maxcons = maxcons = memory.Memory(shape=thresholds, depth=p.n_reals,
                                                       init=[], attrs=distributed)
        # the counts for the two lookup reads: a copy in distributed RAM (the lookup compares
        # them two cycles after the read, which a block RAM's 5.8 ns from clock to data
        # would not leave room for; and a block RAM read in time would miss the last update)
        m.submodules.counts_lookup = counts_lookup = memory.Memory(
            shape=unsigned(cbits), depth=p.n_reals, init=[], attrs=distributed)
        for k in range(2):
            count_rd = counts_lookup.read_port(domain="comb")
            m.d.comb += [count_rd.addr.eq(self.rd_real[k]), self.count[k].eq(count_rd.data)]
        # the weights (written only by REAL_LIMIT) in block RAM with its output register, one
        # per read port
        for k in range(2):
            weights = BlockRam(WEIGHT_BITS, p.n_reals)
            m.submodules[f"weights{k}"] = weights
            m.d.comb += [weights.w_en.eq(self.limit_stb), weights.w_addr.eq(self.real_sel),
                         weights.w_data.eq(self.w_data[MAXCON_BITS:MAXCON_BITS + WEIGHT_BITS]),
                         weights.r_addr.eq(self.weight_real[k]),
                         self.weight[k].eq(weights.r_data)]

        # ---- pending events -----------------------------------------------------------------
        # a lookup's increment goes straight in; a REAL_LIMIT write's refresh (recompute the
        # real's full bit), the lookup's decrement and the scrub's decrements wait their turn
        p_refresh = Signal()
        p_refresh_real = Signal(p.real_bits)
        p_dec = Signal()
        p_dec_real = Signal(p.real_bits)
        p_scrub = Signal(ways)
        p_scrub_reals = Array(Signal(p.real_bits, name=f"p_scrub_real{w}") for w in range(ways))
        m.d.comb += self.busy.eq(p_scrub.any())

        # step 0, pick: one operation per cycle, the lookup's increment, a refresh, the lookup's
        # decrement, then a scrub's decrements (lowest way first).  (A refresh goes before the
        # decrement so that one is never overwritten: REAL_LIMIT writes of two reals are at
        # least two cycles apart, with REAL_SEL between, and increments eight.)
        pick_real = Signal(p.real_bits)
        pick_down = Signal()
        pick_keep = Signal()
        pick = Signal()
        scrub_way = Signal(range(ways))
        for w in reversed(range(ways)):
            with m.If(p_scrub[w]):
                m.d.comb += scrub_way.eq(w)
        with m.If(self.inc):
            m.d.comb += [pick.eq(1), pick_real.eq(self.inc_real)]
        with m.Elif(p_refresh):
            m.d.comb += [pick.eq(1), pick_real.eq(p_refresh_real), pick_keep.eq(1)]
            m.d.sync += p_refresh.eq(0)
        with m.Elif(p_dec):
            m.d.comb += [pick.eq(1), pick_real.eq(p_dec_real), pick_down.eq(1)]
            m.d.sync += p_dec.eq(0)
        with m.Elif(p_scrub.any()):
            m.d.comb += [pick.eq(1), pick_real.eq(p_scrub_reals[scrub_way]), pick_down.eq(1)]
            m.d.sync += p_scrub.bit_select(scrub_way, 1).eq(0)
        # new events (after the clears above: a lookup's events never find their own pending)
        with m.If(self.limit_stb):
            m.d.sync += [p_refresh.eq(1), p_refresh_real.eq(self.real_sel)]
        with m.If(self.dec):
            m.d.sync += [p_dec.eq(1), p_dec_real.eq(self.dec_real)]
        with m.If(self.scrub.any()):
            m.d.sync += p_scrub.eq(self.scrub)
            m.d.sync += [p_scrub_reals[w].eq(self.scrub_reals[w]) for w in range(ways)]

        # step 1, read: the count and the limit of the picked real, into registers; the limit
        # as the threshold that the count before the operation must reach (or pass) for the
        # real to be full after it
        s1, s1_real, s1_down, s1_keep = Signal(), Signal(p.real_bits), Signal(), Signal()
        m.d.sync += [s1.eq(pick), s1_real.eq(pick_real), s1_down.eq(pick_down),
                     s1_keep.eq(pick_keep)]
        s2, s2_real, s2_down, s2_keep = Signal(), Signal(p.real_bits), Signal(), Signal()
        s2_count, s2_forward = Signal(cbits), Signal()
        s2_limited, s2_threshold = Signal(), Signal(cbits)
        count_rd = counts.read_port(domain="comb")
        max_rd = maxcons.read_port(domain="comb")
        m.d.comb += [count_rd.addr.eq(s1_real), max_rd.addr.eq(s1_real)]
        limit = max_rd.data
        m.d.sync += [
            s2.eq(s1), s2_real.eq(s1_real), s2_down.eq(s1_down), s2_keep.eq(s1_keep),
            s2_count.eq(count_rd.data),
            # the operation ahead writes the same real in this cycle: take its result (step 2)
            s2_forward.eq(s2 & (s2_real == s1_real)),
            s2_limited.eq(limit.limited),
            # full after the operation: count + 1 >= limit (count >= below), count - 1 >= limit
            # (count >= above), count >= limit
            s2_threshold.eq(Mux(s1_down, limit.above, Mux(s1_keep, limit.limit, limit.below))),
        ]
        # step 2, write: the count one up or down, the full bit from the count before
        last_count = Signal(cbits)
        base = Signal(cbits)
        new_count = Signal(cbits)
        m.d.comb += [
            base.eq(Mux(s2_forward, last_count, s2_count)),
            new_count.eq(Mux(s2_down, base - 1, Mux(s2_keep, base, base + 1))),
        ]
        m.d.sync += last_count.eq(new_count)
        count_wr = counts.write_port()
        lookup_wr = counts_lookup.write_port()
        m.d.comb += [count_wr.addr.eq(s2_real), count_wr.data.eq(new_count), count_wr.en.eq(s2),
                     lookup_wr.addr.eq(s2_real), lookup_wr.data.eq(new_count),
                     lookup_wr.en.eq(s2)]
        op_full = Signal()
        # (both counts compared at once, then picked: the forwarding multiplexer stays out of
        # the compare's carry chain)
        m.d.comb += op_full.eq(s2_limited & Mux(s2_forward, last_count >= s2_threshold,
                                                s2_count >= s2_threshold))
        # the full bits, through a predecoded one-hot select (a decoder per bit compare would
        # cost several LUTs per real)
        op_sel = _one_hot(m, s2_real, p.n_reals, s2, "op")
        for r in range(p.n_reals):
            with m.If(op_sel[r]):
                m.d.sync += self.full[r].eq(op_full)

        # ---- REAL_LIMIT and REAL_CONNS: the real REAL_SEL names --------------------------------
        # (the limit is kept in the counts' width, saturated)
        written = self.w_data[0:MAXCON_BITS]
        new_limit = Signal(cbits)
        m.d.comb += new_limit.eq(Mux(written >= (1 << cbits) - 1, (1 << cbits) - 1, written))
        max_wr = maxcons.write_port()
        m.d.comb += [max_wr.addr.eq(self.real_sel), max_wr.en.eq(self.limit_stb),
                     max_wr.data.limited.eq(new_limit != 0), max_wr.data.below.eq(new_limit - 1),
                     # (the top limit is never reached, nor is it when saturated here)
                     max_wr.data.above.eq(Mux(written >= (1 << cbits) - 1, (1 << cbits) - 1,
                                              new_limit + 1)),
                     max_wr.data.limit.eq(new_limit)]
        count_sel = counts.read_port(domain="comb")
        m.d.comb += count_sel.addr.eq(self.real_sel)
        m.d.sync += self.sel_conns.eq(Cat(count_sel.data, C(0, 31 - cbits),
                                          self.full.bit_select(self.real_sel, 1)))
        return m
