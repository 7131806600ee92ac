"""The connection count engine, cycle by cycle in Amaranth's simulator against a plain count
per real: the events arrive as the connection table sends them (a lookup's increment and
decrement in its update's next cycle, the increment announced a cycle before that on
``inc_next``, at most one lookup per 8 cycles; scrubs while the engine
is not busy; REAL_LIMIT writes at least two cycles apart), and

- four cycles after each update (the next lookup's step 5), the count and full bit (``full_now``:
  the bits with the write in flight applied) of both reals it touched are the model's (unless a
  REAL_LIMIT write or a scrub of that real is still settling: a scrub's decrements go last, so
  a real stays settling until the engine is no longer busy);
- a real that no event has named for 14 cycles shows the model's full bit;
- once the events stop, every real's count, full bit and REAL_CONNS word are the model's.
"""

from __future__ import annotations

import random

import pytest

from openslb.hw.conncount import ConnCount
from openslb.hw.spec import MAXCON_BITS, Params
from openslb.sim.amaranth_sim import run_clocked

REALS = [0, 1, 17, 18, 100, 255]    # few reals, in several banks, so events collide


@pytest.mark.parametrize("seed", [1, 2])
def test_count_engine_matches_counts_per_real(seed):
    p = Params()
    dut = ConnCount(p)
    rng = random.Random(seed)
    problems: list = []
    checked = {"lookups": 0}

    async def bench(ctx):
        counts = {r: 0 for r in range(p.n_reals)}
        limits = {r: 0 for r in range(p.n_reals)}
        weights = {r: 0 for r in range(p.n_reals)}
        recent = {}       # real -> last cycle a limit write or a scrub named it
        # real -> cycle of a scrub whose decrement of it may still be pending (a scrub's
        # decrements go last, so REAL_LIMIT refreshes in a row hold them back), and real -> last
        # cycle its scrub's decrement may still be on its way (4 after the engine's last busy)
        scrub_waiting: dict = {}
        scrub_done: dict = {}
        touched_at = {}   # real -> last cycle any event named it

        def full(r: int) -> int:
            return int(limits[r] > 0 and counts[r] >= limits[r])

        def settling(r: int, cycle: int) -> bool:
            return (cycle - recent.get(r, -100) <= 8 or r in scrub_waiting
                    or cycle <= scrub_done.get(r, -100))

        last_limit = -10
        pending_check = []    # (cycle, reals)
        reading = []          # the reads of the last cycle: (port, real, count, weight)
        for cycle in range(2500):
            for name in ("inc", "inc_next", "dec", "limit_stb"):
                ctx.set(getattr(dut, name), 0)
            ctx.set(dut.scrub, 0)
            busy = ctx.get(dut.busy)
            if not busy:        # (a scrub's decrements are all picked)
                for r, at in list(scrub_waiting.items()):
                    if at < cycle:
                        scrub_done[r] = cycle + 4
                        del scrub_waiting[r]
            # a lookup's update (its write-back: the entry written counts up, the one it
            # replaces down, possibly the same real), announced a cycle ahead as the connection
            # table does (``inc_next``: the inputs of its registers)
            if cycle % 8 == 2:
                next_up = rng.choice(REALS)
                ctx.set(dut.inc_next, 1)
                ctx.set(dut.inc_real_next, next_up)
            if cycle % 8 == 3:
                up = next_up
                ctx.set(dut.inc, 1)
                ctx.set(dut.inc_real, up)
                counts[up] += 1
                touched = [up]
                touched_at[up] = cycle
                live = [r for r in REALS if counts[r] > 0]
                if rng.random() < 0.7:
                    down = rng.choice(live)
                    ctx.set(dut.dec, 1)
                    ctx.set(dut.dec_real, down)
                    counts[down] -= 1
                    touched.append(down)
                    touched_at[down] = cycle
                pending_check.append((cycle + 4, touched))
            # a scrub clears dead entries (never while decrements are pending)
            elif not busy and rng.random() < 0.08:
                mask = 0
                for w in range(p.conn_ways):
                    live = [r for r in REALS if counts[r] > 0]
                    if live and rng.random() < 0.5:
                        r = rng.choice(live)
                        mask |= 1 << w
                        ctx.set(dut.scrub_reals[w], r)
                        counts[r] -= 1
                        recent[r] = touched_at[r] = scrub_waiting[r] = cycle
                ctx.set(dut.scrub, mask)
            # REAL_LIMIT writes, two cycles apart at the least
            if cycle - last_limit >= 2 and rng.random() < 0.3:
                r = rng.choice(REALS)
                limits[r] = rng.randrange(0, 5)
                ctx.set(dut.real_sel, r)
                weights[r] = rng.randrange(1, 256)
                ctx.set(dut.w_data, limits[r] | (weights[r] << MAXCON_BITS))
                ctx.set(dut.limit_stb, 1)
                last_limit = cycle
                recent[r] = touched_at[r] = cycle
            # the counts and weights read in the last cycle (latency 1)
            for k, r, count, weight in reading:
                got = (ctx.get(dut.count[k]), ctx.get(dut.weight[k]))
                if got != (count, weight):
                    problems.append(("read", cycle, r, got, (count, weight)))
            reading = []
            # the next lookup reads the counts, the weights and the full bits in its step 5
            # (the bits with the write still in flight applied: ``full_now``)
            for due, touched in [c for c in pending_check if c[0] == cycle]:
                ctx.set(dut.rd_real[0], touched[0])
                ctx.set(dut.rd_real[1], touched[-1])
                got_full = ctx.get(dut.full_now)
                for k, r in enumerate((touched[0], touched[-1])):
                    if settling(r, cycle):
                        continue    # a limit write or a scrub of r may still be settling
                    checked["lookups"] += 1
                    reading.append((k, r, counts[r], weights[r]))
                    if (got_full >> r) & 1 != full(r):
                        problems.append((cycle, r, (got_full >> r) & 1, full(r)))
            # a real that no event has named for 14 cycles shows its full bit (a scrub's
            # decrements go last: behind an increment, a decrement, two refreshes, other ways)
            got_full = ctx.get(dut.full)
            for r in REALS:
                if cycle - touched_at.get(r, -100) >= 14 and (got_full >> r) & 1 != full(r):
                    problems.append(("settled", cycle, r, (got_full >> r) & 1, full(r)))
            await ctx.tick()
        # settle, then everything
        for name in ("inc", "inc_next", "dec", "limit_stb"):
            ctx.set(getattr(dut, name), 0)
        ctx.set(dut.scrub, 0)
        await ctx.tick().repeat(20)
        got_full = ctx.get(dut.full)
        for r in range(p.n_reals):
            ctx.set(dut.rd_real[0], r)
            ctx.set(dut.real_sel, r)
            await ctx.tick().repeat(3)
            word = ctx.get(dut.sel_conns)
            if (ctx.get(dut.count[0]) != counts[r] or (got_full >> r) & 1 != full(r)
                    or word != counts[r] | (full(r) << 31)):
                problems.append(("end", r, ctx.get(dut.count[0]), counts[r], word,
                                 (got_full >> r) & 1, full(r)))

    run_clocked(dut, bench)
    assert checked["lookups"] > 200
    assert not problems, problems[:10]
