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
``inc_next``, ``inc_real_next`` : In — ``inc`` and ``inc_real`` a cycle ahead (the connection
                 table's register inputs): the banks' read addresses select by registers.
``scrub``      : In(ways) — a scrub's write clears these ways (one cycle), whose reals are
                 ``scrub_reals``.
``busy``       : Out(1) — scrub decrements are still pending (or just registered on their way
                 in): the scrubber waits.
``rd_real``    : In(real_bits) × 2 — reals whose ``count`` and ``weight`` are read (latency 1:
                 distributed RAM read into registers, then a multiplexer level).
``full``       : Out(n_reals) — bit r: real r has a limit and is at it (registers, one write
                 behind: the write ``pend`` lands at the end of this cycle).
``pend``, ``pend_real``, ``pend_full`` : Out — the full bit being written (registers): real
                 ``pend_real``'s bit is ``pend_full`` when ``pend``.
``full_now``   : Out(n_reals) — ``full`` with the pending write applied (combinational).
``limit_stb``, ``w_data``, ``real_sel`` : REAL_LIMIT writes ``{weight, maxcon}`` of ``real_sel``.
``sel_conns``  : Out(32) — REAL_CONNS: ``{full[31], conns}`` of ``real_sel``, two cycles late.

Timing: one operation a cycle (the lookup's increment, the lookup's decrement, a REAL_LIMIT
write's refresh, the scrub's decrements, in that order), each a read-modify-write of one real's
count and full bit in four steps:

0. pick (the increment straight from the connection table's register, else the head of the
   pending operations, itself a register), and read every bank of 64 reals at the real's low
   bits into registers: the count and the limit;
1. the real's bank into registers, the limit as the threshold the count must reach for the real
   to be full after the operation, whether the operation one or two steps ahead names the
   same real, the change (+1, 0 or -1) and the bank to write;
2. count one up or down (the change added to the count read and to the results of the
   operations ahead, in parallel, and the one that applies picked: forwarded), compare, write
   the count and register the full bit (``pend``);
3. write the full bit.

No RAM read and no wide multiplexer feeds logic in its own cycle, and the compare does not wait
for the sum.  A lookup's increment is in the RAMs and the full bits three cycles after its
update cycle, its decrement four (the connection table sends both for every update: a refresh
of an entry counts its real up and down again), in ``full_now`` (``full`` and the pending
write); the next lookup, which starts in the update's cycle and reads counts and full bits in
its step 5, sees both.  A REAL_LIMIT write sets the limit and the weight at once and the real's
full bit four to six cycles later (its refresh); REAL_CONNS follows two cycles after REAL_SEL
(its full bit from ``full``, so it may lag a write in flight by a cycle).
"""

from __future__ import annotations

from amaranth import Array, C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw.layouts import register_view
from openslb.hw.optional import OptionalBlock
from openslb.hw.picks import one_of
from openslb.hw.spec import WEIGHT_BITS, Params

__all__ = ["ConnCount"]

#: Reals per bank of the counts and the limits: four ECP5 LUT RAMs deep (one multiplexer level
#: behind them).  (Banks of 16 or 32 reals crash yosys 0.70's abc9 in the selector: an assertion
#: in ABC_OPS_REINTEGRATE.)
BANK = 64


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


def _packed(mask, values: list) -> tuple:
    """``values`` whose ``mask`` bit is set, packed to the front in order, and a thermometer
    mask of how many there are (bit k set: entry k is one of them).

    Counted with AND/OR recurrences, not sums: an adder here became a carry chain that
    synthesis shared with the connection table's own test of the same bits."""
    n = len(values)
    # at_least[j] over the bits seen so far: at least j + 1 of them are set
    at_least = [C(0, 1)] * n
    packed = [C(0, len(values[0]))] * n
    for w in range(n):
        # value w goes to place j when exactly j of the bits below w are set
        for j in range(n):
            exactly = (at_least[j - 1] if j else C(1, 1)) & ~at_least[j]
            packed[j] = packed[j] | Mux(mask[w] & exactly, values[w], 0)
        at_least = [at_least[j] | ((at_least[j - 1] if j else C(1, 1)) & mask[w])
                    for j in range(n)]
    return Cat(*at_least), packed


class ConnCount(OptionalBlock):
    @staticmethod
    def ports(params: Params) -> wiring.Signature:
        p = params
        return wiring.Signature({
            "inc": In(1), "inc_real": In(p.real_bits),
            "inc_next": In(1), "inc_real_next": In(p.real_bits),
            "dec": In(1), "dec_real": In(p.real_bits),
            "scrub": In(p.conn_ways), "scrub_reals": In(p.real_bits).array(p.conn_ways),
            "busy": Out(1),
            "rd_real": In(p.real_bits).array(2),
            "count": Out(p.conn_count_bits).array(2),
            "weight": Out(WEIGHT_BITS).array(2),
            "full": Out(p.n_reals),
            "pend": Out(1), "pend_real": Out(p.real_bits), "pend_full": Out(1),
            "full_now": Out(p.n_reals),
            "limit_stb": In(1), "w_data": In(32), "real_sel": In(p.real_bits),
            "sel_conns": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        ways = p.conn_ways
        cbits = p.conn_count_bits
        # The counts and the limits are in distributed RAM, in banks of BANK reals: the engine
        # reads every bank at the picked real's low bits in its step 0 and registers the words,
        # then picks the bank in step 1.  A 256-deep read in one cycle is a LUT RAM and four
        # multiplexer levels (about 8 ns on an ECP5); a block RAM's 5.8 ns from clock to data
        # would leave no room for the logic after it either.
        distributed = {"ram_style": "distributed"}
        depth = min(BANK, p.n_reals)
        n_banks = -(-p.n_reals // depth)
        low = (depth - 1).bit_length()
        counts = [memory.Memory(shape=unsigned(cbits), depth=depth, init=[], attrs=distributed)
                  for _ in range(n_banks)]
        # a limit is kept in the counts' width, saturated (a count never reaches the top value:
        # the table holds fewer flows, just as it never reaches a larger limit), with the limit
        # less one and plus one beside it (the thresholds of counting up and down), so that no
        # sum follows the RAM read in the engine
        thresholds = data.StructLayout({"limited": 1, "below": cbits, "limit": cbits,
                                        "above": cbits})
        maxcons = [memory.Memory(shape=thresholds, depth=depth, init=[], attrs=distributed)
                   for _ in range(n_banks)]
        for b in range(n_banks):
            m.submodules[f"counts{b}"] = counts[b]
            m.submodules[f"maxcons{b}"] = maxcons[b]
        # The lookup's two reads: the counts (more read ports of the engine's banks), and the
        # weights (written only by REAL_LIMIT) in banks of distributed RAM like them, read into
        # the ports' registers and the bank picked behind them (the lookup reads the counts in its step
        # 5, after the last update's decrement, and multiplies in step 6: a block RAM read
        # there would land too far from the multiplier, and a 256-deep read in one cycle is
        # too slow).
        weights = [memory.Memory(shape=unsigned(WEIGHT_BITS), depth=depth, init=[],
                                 attrs=distributed) for _ in range(n_banks)]
        for b in range(n_banks):
            m.submodules[f"weights{b}"] = weights[b]
            weight_wr = weights[b].write_port()
            m.d.comb += [weight_wr.addr.eq(self.real_sel[0:low]),
                         weight_wr.data.eq(register_view("REAL_LIMIT", self.w_data).weight),
                         weight_wr.en.eq(self.limit_stb & (self.real_sel[low:p.real_bits] == b))]
        for k in range(2):
            bank_q = Signal(range(n_banks), name=f"rd_bank{k}")
            m.d.sync += bank_q.eq(self.rd_real[k][low:p.real_bits])
            for name, mems, out in (("count", counts, self.count[k]),
                                    ("weight", weights, self.weight[k])):
                words = Array(Signal(out.shape(), name=f"{name}{k}_bank{b}")
                              for b in range(n_banks))
                for b in range(n_banks):
                    rd = mems[b].read_port(domain="sync")
                    m.d.comb += [rd.addr.eq(self.rd_real[k][0:low]), words[b].eq(rd.data)]
                m.d.comb += out.eq(words[bank_q])

        # ---- pending events -----------------------------------------------------------------
        # A lookup's increment goes straight in; its decrement (a cycle later), a REAL_LIMIT
        # write's refresh (recompute the real's full bit) and the scrub's decrements wait their
        # turn in registers, in that order, the scrub's lowest way first.  The decrement goes
        # before any refresh, so the next lookup always sees it; a refresh may then wait two
        # cycles (an increment and a decrement), in which a second REAL_LIMIT write can come
        # (they are two cycles apart at the least, with REAL_SEL between): two may be pending.
        p_dec, p_dec_real = Signal(), Signal(p.real_bits)
        p_refresh = Signal(2)
        p_refresh_reals = [Signal(p.real_bits, name=f"p_refresh_real{k}") for k in range(2)]
        # The scrub's decrements are a packed list, lowest way first: ``p_scrub`` is a
        # thermometer (bit k: entry k is pending), and each pick takes entry 0 and shifts the
        # rest down, so the pick needs no search.  A scrub is packed on its way in, into
        # registers (``in_scrub``, ``in_scrub_reals``), and the scrubber waits for both.
        p_scrub = Signal(ways)
        p_scrub_reals = [Signal(p.real_bits, name=f"p_scrub_real{w}") for w in range(ways)]
        in_scrub = Signal(ways)
        in_scrub_reals = [Signal(p.real_bits, name=f"in_scrub_real{w}") for w in range(ways)]
        packed_mask, packed_reals = _packed(self.scrub, list(self.scrub_reals))
        m.d.sync += [in_scrub.eq(packed_mask)]
        m.d.sync += [r.eq(v) for r, v in zip(in_scrub_reals, packed_reals)]
        m.d.comb += self.busy.eq(p_scrub[0] | in_scrub[0])

        # the pending set's next state: this cycle's pick taken out, new events put in
        n_dec, n_dec_real = Signal(), Signal(p.real_bits)
        n_refresh = Signal(2)
        n_refresh_reals = [Signal(p.real_bits, name=f"n_refresh_real{k}") for k in range(2)]
        n_scrub = Signal(ways)
        n_scrub_reals = [Signal(p.real_bits, name=f"n_scrub_real{w}") for w in range(ways)]
        m.d.comb += [n_dec.eq(p_dec), n_dec_real.eq(p_dec_real), n_refresh.eq(p_refresh),
                     n_scrub.eq(p_scrub)]
        m.d.comb += [n.eq(r) for n, r in zip(n_refresh_reals + n_scrub_reals,
                                             p_refresh_reals + p_scrub_reals)]
        with m.If(~self.inc):
            with m.If(p_dec):
                m.d.comb += n_dec.eq(0)
            with m.Elif(p_refresh[0]):
                m.d.comb += [n_refresh.eq(p_refresh[1]), n_refresh_reals[0].eq(p_refresh_reals[1])]
            with m.Elif(p_scrub[0]):
                m.d.comb += n_scrub.eq(p_scrub >> 1)
                m.d.comb += [n.eq(r) for n, r in zip(n_scrub_reals, p_scrub_reals[1:])]
        # (after the pick: a lookup's events never find their own pending)
        with m.If(self.dec):
            m.d.comb += [n_dec.eq(1), n_dec_real.eq(self.dec_real)]
        refresh_left = Signal()     # a refresh still pending in place 0 after the pick
        m.d.comb += refresh_left.eq(Mux(~self.inc & ~p_dec, p_refresh[1], p_refresh[0]))
        with m.If(self.limit_stb):
            # (into the first free place)
            with m.If(refresh_left):
                m.d.comb += [n_refresh[1].eq(1), n_refresh_reals[1].eq(self.real_sel)]
            with m.Else():
                m.d.comb += [n_refresh[0].eq(1), n_refresh_reals[0].eq(self.real_sel)]
        with m.If(in_scrub[0]):
            m.d.comb += n_scrub.eq(in_scrub)
            m.d.comb += [n.eq(r) for n, r in zip(n_scrub_reals, in_scrub_reals)]
        m.d.sync += [p_dec.eq(n_dec), p_dec_real.eq(n_dec_real), p_refresh.eq(n_refresh),
                     p_scrub.eq(n_scrub)]
        m.d.sync += [r.eq(n) for r, n in zip(p_refresh_reals + p_scrub_reals,
                                             n_refresh_reals + n_scrub_reals)]

        # step 0, pick: one operation per cycle, the increment, else the pending set's head,
        # which is kept in registers (computed from the set's next state), so that the RAM
        # address is a 2:1 multiplexer of registers
        head, head_real, head_keep = Signal(), Signal(p.real_bits), Signal()
        m.d.sync += [head.eq(n_dec | n_refresh[0] | n_scrub[0]),
                     head_keep.eq(~n_dec & n_refresh[0]),
                     head_real.eq(Mux(n_dec, n_dec_real,
                                      Mux(n_refresh[0], n_refresh_reals[0],
                                          n_scrub_reals[0])))]
        pick, pick_real, pick_down, pick_keep = Signal(), Signal(p.real_bits), Signal(), Signal()
        m.d.comb += [pick.eq(self.inc | head),
                     pick_real.eq(Mux(self.inc, self.inc_real, head_real)),
                     pick_down.eq(~self.inc & ~head_keep), pick_keep.eq(~self.inc & head_keep)]

        # step 0 also reads every bank at the picked real's low bits, into the read ports'
        # registers: its count and its limit
        s1, s1_real, s1_down, s1_keep = Signal(), Signal(p.real_bits), Signal(), Signal()
        m.d.sync += [s1.eq(pick), s1_real.eq(pick_real), s1_down.eq(pick_down),
                     s1_keep.eq(pick_keep)]
        bank_count = Array(Signal(cbits, name=f"bank_count{b}") for b in range(n_banks))
        bank_limit = Array(Signal(thresholds, name=f"bank_limit{b}") for b in range(n_banks))
        # Each bank has an address multiplexer of its own, which takes the increment only when
        # it is for that bank (another bank's word is not used then): the multiplexers differ,
        # so synthesis keeps one per bank, and each can sit by its bank.  One multiplexer
        # drove every bank's LUT RAMs, and placement put it between them all, far from each
        # (9.2 ns of routing on the path that set fmax at f67cc56).
        # (whether the increment is for the bank is registered, from the increment of the next
        # cycle: the select of the LUT RAMs' address multiplexers, a net of some 200 loads per
        # bank, starts at a flip-flop; behind a decode of the increment's real it set fmax at
        # 6263294, seed 2)
        inc_banks = Signal(n_banks)
        m.d.sync += [inc_banks[b].eq(self.inc_next & (self.inc_real_next[low:] == b))
                     for b in range(n_banks)]
        for b in range(n_banks):
            count_rd = counts[b].read_port(domain="sync")
            max_rd = maxcons[b].read_port(domain="sync")
            bank_addr = Signal(low, name=f"pick_addr{b}")
            inc_here = self.inc if n_banks == 1 else inc_banks[b]
            m.d.comb += [bank_addr.eq(Mux(inc_here, self.inc_real, head_real)[0:low]),
                         count_rd.addr.eq(bank_addr), max_rd.addr.eq(bank_addr),
                         bank_count[b].eq(count_rd.data), bank_limit[b].eq(max_rd.data)]

        # step 1: the real's bank, into registers, the limit as the threshold that the count
        # before the operation must reach for the real to be full after it (count + 1 >= limit:
        # count >= below; count - 1 >= limit: count >= above; count >= limit); and whether an
        # operation still in flight names the same real: the one a step ahead writes in this
        # cycle, the one two steps ahead wrote in the cycle of the read (neither write is in
        # the words read)
        s2, s2_real = Signal(), Signal(p.real_bits)
        s2_count, s2_limited, s2_threshold = Signal(cbits), Signal(), Signal(cbits)
        s2_forward1, s2_forward2 = Signal(), Signal()
        s3, s3_real = Signal(), Signal(p.real_bits)       # what was in step 2 a cycle ago
        bank = s1_real[low:]
        forward1 = s2 & (s2_real == s1_real)
        forward2 = s3 & (s3_real == s1_real)
        m.d.sync += [
            s2.eq(s1), s2_real.eq(s1_real),
            s2_count.eq(bank_count[bank]), s2_limited.eq(bank_limit[bank].limited),
            s2_threshold.eq(Mux(s1_down, bank_limit[bank].above,
                                Mux(s1_keep, bank_limit[bank].limit, bank_limit[bank].below))),
            s2_forward1.eq(forward1),
            s2_forward2.eq(forward2),
            s3.eq(s2), s3_real.eq(s2_real),
        ]
        # the step's change of the count (-1, 0 or +1 in the counts' width) and which count it
        # changes, one-hot, as registers: step 2 adds the change to each candidate count in
        # parallel, straight from registers, and picks the sum last (a pick in front of one
        # adder, then the adder's carry chain, was a late path into the counts' LUT RAMs)
        s2_delta = Signal(cbits)
        s2_from = Signal(3)     # the count read, the result a step ahead, two steps ahead
        # (and which bank it writes, registered: the enable reaches every LUT RAM of the bank)
        s2_banks = Signal(n_banks)
        m.d.sync += [s2_banks[b].eq(s1 & (bank == b)) for b in range(n_banks)]
        m.d.sync += [
            s2_delta.eq(Mux(s1_down, (1 << cbits) - 1, Mux(s1_keep, 0, 1))),
            s2_from.eq(Cat(~forward1 & ~forward2, forward1, ~forward1 & forward2)),
        ]
        # step 2, write: the count one up or down, the full bit from the count before (every
        # possible count compared at once, then picked: the forwarding multiplexer stays out
        # of the compares' carry chains)
        last_count = Signal(cbits)      # the result of the operation a step ahead
        last2_count = Signal(cbits)     # ... and two steps ahead
        new_count = Signal(cbits)
        sums = [Signal(cbits, name=f"sum_{name}") for name in ("read", "last", "last2")]
        m.d.comb += [total.eq(count + s2_delta)
                     for total, count in zip(sums, (s2_count, last_count, last2_count))]
        m.d.comb += new_count.eq(one_of(list(zip(s2_from, sums))))
        m.d.sync += [last_count.eq(new_count), last2_count.eq(last_count)]
        for b in range(n_banks):
            count_wr = counts[b].write_port()
            m.d.comb += [count_wr.addr.eq(s2_real[0:low]), count_wr.data.eq(new_count),
                         count_wr.en.eq(s2_banks[b])]
        op_full = Signal()
        m.d.comb += op_full.eq(s2_limited & Mux(s2_forward1, last_count >= s2_threshold,
                                                Mux(s2_forward2, last2_count >= s2_threshold,
                                                    s2_count >= s2_threshold)))
        # step 3: the full bit into its register.  The new bit is registered first, in one copy
        # per group of reals that share the one-hot select's high half (16 for 256 reals), each
        # ANDed with its group's decode so that synthesis keeps the copies apart; so the wide
        # nets to the full bits, which sit beside the words the lookups read them in all over
        # the die, start at flip-flops (behind the compare they set fmax at 6263294).  Until
        # it lands the write is ``pend``: readers apply it themselves (``full_now`` does).
        group_bits = (p.n_reals - 1).bit_length() // 2
        n_groups = -(-p.n_reals // (1 << group_bits))
        pend_full_g = Signal(n_groups)
        m.d.sync += [self.pend.eq(s2), self.pend_real.eq(s2_real), self.pend_full.eq(op_full)]
        m.d.sync += [pend_full_g[g].eq(op_full & (s2_real[group_bits:] == g))
                     for g in range(n_groups)]
        pend_sel = _one_hot(m, self.pend_real, p.n_reals, self.pend, "pend")
        for g in range(n_groups):
            for r in range(g << group_bits, min(p.n_reals, (g + 1) << group_bits)):
                with m.If(pend_sel[r]):
                    m.d.sync += self.full[r].eq(pend_full_g[g])
        m.d.comb += self.full_now.eq((self.full & ~pend_sel)
                                     | (pend_sel & self.pend_full.replicate(p.n_reals)))

        # ---- REAL_LIMIT and REAL_CONNS: the real REAL_SEL names --------------------------------
        # (the limit is kept in the counts' width, saturated)
        written = register_view("REAL_LIMIT", self.w_data).maxcon
        new_limit = Signal(cbits)
        m.d.comb += new_limit.eq(Mux(written >= (1 << cbits) - 1, (1 << cbits) - 1, written))
        stored = Signal(thresholds)
        m.d.comb += [stored.limited.eq(new_limit != 0), stored.below.eq(new_limit - 1),
                     # (the top limit is never reached, nor is it when saturated here)
                     stored.above.eq(Mux(written >= (1 << cbits) - 1, (1 << cbits) - 1,
                                         new_limit + 1)),
                     stored.limit.eq(new_limit)]
        for b in range(n_banks):
            max_wr = maxcons[b].write_port()
            m.d.comb += [max_wr.addr.eq(self.real_sel[0:low]), max_wr.data.eq(stored),
                         max_wr.en.eq(self.limit_stb & (self.real_sel[low:p.real_bits] == b))]
        # REAL_CONNS in two steps, like the engine's reads: every bank's word and the real's
        # 16 full bits, then the bank and the bit
        sel_counts = Array(Signal(cbits, name=f"sel_count{b}") for b in range(n_banks))
        for b in range(n_banks):
            count_sel = counts[b].read_port(domain="comb")
            m.d.comb += count_sel.addr.eq(self.real_sel[0:low])
            m.d.sync += sel_counts[b].eq(count_sel.data)
        sel_bank = Signal(range(n_banks))
        sel_bit = Signal(4)
        sel_full = Signal(16)
        m.d.sync += [sel_bank.eq(self.real_sel[low:p.real_bits]), sel_bit.eq(self.real_sel[0:4]),
                     sel_full.eq(self.full.word_select(self.real_sel[4:p.real_bits], 16))]
        m.d.sync += self.sel_conns.eq(Cat(sel_counts[sel_bank], C(0, 31 - cbits),
                                          sel_full.bit_select(sel_bit, 1)))
        return m
