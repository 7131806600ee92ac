"""Maglev lookup-table population with weights, in numpy, and a minimal-disruption rebalance.

The table of a group has ``M`` slots (``M`` prime).  Each real ``r`` has a preference list over
the slots, the permutation ``slot(j) = (offset_r + j * skip_r) mod M``, with ``offset`` and
``skip`` taken from a 64-bit mix of the real's index, so a real prefers the same slots whatever
group it is in (Eisenbud et al., "Maglev", NSDI 2016).

Population (the one definition; :func:`populate` is the numpy implementation and
:func:`populate_loop` the plain-Python statement of the same rule, used by the tests and the
benchmark):

1. **Quotas.**  Real ``r`` of weight ``w_r`` gets ``quota_r`` slots: ``M * w_r / sum(w)``
   rounded down, the slots left over going one each to the largest remainders (lowest real on
   a tie).  So loads are exactly proportional to the weights, within one slot.
2. **Rounds.**  The slots are handed out in ``R = min(ROUNDS, ceil(M / sum(w)))`` rounds (the
   rounds of the paper's loop, in which a real of weight ``w`` takes ``w`` turns each).  By the end of
   round ``t`` (1-based) real ``r`` is owed ``ceil(quota_r * t / R)`` slots, so every real
   advances at the same pace, as the one-slot-per-turn loop of the paper does.
3. **Claims.**  Within a round, every real still owed ``k`` slots proposes the next ``k`` free
   slots of its preference list (scanning on from where it stopped).  A slot proposed by several
   reals goes to the lowest-numbered of them; the others propose again, until every real has
   what it is owed for the round.

Claiming in batches is what lets numpy do the work (``make bench`` measures ``M = 65537`` with
1000 weighted reals against the plain loop).  With up to ``ROUNDS`` rounds the pace is that of
the paper's loop whenever ``sum(w) >= M / ROUNDS``, so balance and disruption stay those
of Maglev (``tests/test_model_maglev.py``); fewer rounds build faster but move more slots when a
real leaves.

:func:`rebalance` is the optional minimal-disruption mode: starting from the table in service,
it frees only the slots of reals that left and the excess of reals above their new quota, and
refills those, so a join or a leave moves the fewest slots that the quotas allow.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from openslb.hw.spec import is_prime

__all__ = ["populate", "populate_loop", "rebalance", "quotas", "permutation_params",
           "is_prime", "EMPTY", "ROUNDS"]

#: Slot value of a table with no reals (never produced for a non-empty group).
EMPTY = -1
#: Most rounds in which the slots are handed out (fewer when every quota is smaller).
ROUNDS = 128
#: Scan window: ``want * M / free * a // b + c`` candidates (tuned for speed, no effect on the
#: result: a real whose window holds too few free slots scans on).
WINDOW_SLACK = (9, 8, 16)


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a fixed, well-spread hash of a small integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def permutation_params(real: int, table_size: int) -> tuple[int, int]:
    """``(offset, skip)`` of a real's preference list in a table of ``table_size`` slots."""
    h = _mix64(real)
    return (h & 0xFFFFFFFF) % table_size, (h >> 32) % (table_size - 1) + 1


def _check(weights: Mapping[int, int], table_size: int) -> list[int]:
    if not is_prime(table_size):
        raise ValueError(f"Maglev table size {table_size} is not prime")
    for r, w in weights.items():
        if w < 0:
            raise ValueError(f"real {r}: negative weight {w}")
    return sorted(r for r, w in weights.items() if w > 0)


def quotas(weights: Mapping[int, int], table_size: int) -> dict[int, int]:
    """Slots per real: proportional to weight, largest remainders first (rule 1 above)."""
    reals = _check(weights, table_size)
    if not reals:
        return {}
    w = np.array([weights[r] for r in reals], dtype=np.int64)
    exact = table_size * w
    base = exact // w.sum()
    rest = table_size - int(base.sum())
    remainder = exact - base * w.sum()
    order = np.lexsort((np.arange(len(reals)), -remainder))  # largest remainder, lowest real
    base[order[:rest]] += 1
    return {r: int(q) for r, q in zip(reals, base)}


def _rounds(weights: Mapping[int, int], table_size: int) -> int:
    """Rule 2's ``R``: the rounds of the paper's loop (each real ``w`` turns a round, so
    ``M / sum(w)`` rounds), at most :data:`ROUNDS`."""
    total = sum(w for w in weights.values() if w > 0)
    return max(1, min(ROUNDS, -(-table_size // total))) if total else 1


def _targets(quota: np.ndarray, round_: int, rounds: int) -> np.ndarray:
    """Slots each real must hold by the end of ``round_`` (rule 2): ceil(quota * t / R)."""
    return -(-quota * round_ // rounds)


class _Filler:
    """Shared state of one population: the table, each real's scan position and holdings."""

    def __init__(self, table: np.ndarray, reals: list[int]) -> None:
        m = len(table)
        self.m = m
        self.table = table
        self.reals = np.array(reals, dtype=np.int64)
        params = [permutation_params(r, m) for r in reals]
        self.offset = np.array([p[0] for p in params], dtype=np.int64)
        self.skip = np.array([p[1] for p in params], dtype=np.int64)
        self.inverse = np.array([pow(int(k), -1, m) for k in self.skip], dtype=np.int64)
        self.pointer = np.zeros(len(reals), dtype=np.int64)
        held = np.bincount(table[table != EMPTY].astype(np.int64), minlength=int(max(reals)) + 1)
        self.have = held[self.reals].astype(np.int64)

    def _free_candidates(self, need: np.ndarray):
        """For each real with ``need > 0``: its next ``need`` free preferred slots."""
        m = self.m
        free_slots = np.flatnonzero(self.table == EMPTY)
        free_left = max(1, len(free_slots))
        active = np.flatnonzero(need > 0)
        if len(free_slots) * len(active) <= int(need.sum()) * m // free_left:
            return self._free_candidates_direct(need, active, free_slots)
        rid_parts, pos_parts = [], []
        want = need.copy()
        start = self.pointer.copy()
        while True:
            active = np.flatnonzero(want > 0)
            if active.size == 0:
                break
            # a window a little longer than the expected scan for the free slots wanted
            length = np.minimum(want[active] * m // free_left * WINDOW_SLACK[0] // WINDOW_SLACK[1]
                                + WINDOW_SLACK[2], m - start[active])
            first = np.cumsum(length) - length
            step = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(first, length)
            skip = np.repeat(self.skip[active], length)
            base = np.repeat((self.offset[active] + start[active] * self.skip[active]) % m, length)
            free = self.table[(base + step * skip) % m] == EMPTY
            seen = np.cumsum(free)
            rank = seen - np.repeat(seen[first] - free[first], length)
            take = free & (rank <= np.repeat(want[active], length))
            rid = np.repeat(active, length)[take]
            rid_parts.append(rid)
            pos_parts.append((step + np.repeat(start[active], length))[take])
            want -= np.bincount(rid, minlength=len(want))
            start[active] += length
        rid = np.concatenate(rid_parts) if rid_parts else np.zeros(0, np.int64)
        pos = np.concatenate(pos_parts) if pos_parts else np.zeros(0, np.int64)
        return rid, pos

    def _free_candidates_direct(self, need, active, free_slots):
        """Same answer as the scan, for a nearly full table: rank every free slot in the
        preference list of every real that is owed some (cheaper than scanning when few slots
        are left), and give each real its ``need`` best ones."""
        pos = (free_slots[None, :] - self.offset[active, None]) * self.inverse[active, None] % self.m
        pos.sort(axis=1)
        keep = np.arange(pos.shape[1])[None, :] < need[active, None]
        rid = np.broadcast_to(active[:, None], pos.shape)[keep]
        return rid, pos[keep]

    def claim(self, need: np.ndarray) -> None:
        """Rule 3: propose, settle conflicts by the round's order, repeat for the losers."""
        n = len(self.reals)
        order = np.arange(n)  # lowest real first, as in the paper's loop
        while True:
            need = need.copy()
            if not (need > 0).any():
                return
            rid, pos = self._free_candidates(need)
            slot = (self.offset[rid] + pos * self.skip[rid]) % self.m
            by_slot = np.lexsort((order[rid], slot))
            slot_sorted = slot[by_slot]
            first = np.ones(len(by_slot), dtype=bool)
            first[1:] = slot_sorted[1:] != slot_sorted[:-1]
            won = by_slot[first]
            self.table[slot[won]] = self.reals[rid[won]]
            got = np.bincount(rid[won], minlength=n)
            self.have += got
            need -= got
            # every candidate up to a real's last proposal is now taken: resume after it
            last = np.full(n, -1, dtype=np.int64)
            np.maximum.at(last, rid, pos)
            proposed = last >= 0
            self.pointer[proposed] = last[proposed] + 1

    def fill(self, quota: np.ndarray, rounds: int) -> None:
        for t in range(1, rounds + 1):
            self.claim(np.maximum(_targets(quota, t, rounds) - self.have, 0))


def populate(weights: Mapping[int, int], table_size: int) -> np.ndarray:
    """Fill a Maglev table (numpy).

    Parameters
    ----------
    weights:
        Real index → weight (≥ 1).  Reals with weight 0 are left out.
    table_size:
        ``M``, a prime.

    Returns
    -------
    numpy.ndarray
        ``int16[M]`` of real indices (all :data:`EMPTY` when no real has a weight).
    """
    q = quotas(weights, table_size)
    table = np.full(table_size, EMPTY, dtype=np.int16)
    if q:
        filler = _Filler(table, list(q))
        filler.fill(np.array(list(q.values()), dtype=np.int64), _rounds(weights, table_size))
    return table


def populate_loop(weights: Mapping[int, int], table_size: int) -> np.ndarray:
    """The same population as :func:`populate`, written as a plain Python loop (the reference
    statement of the rule, and the baseline of the speed-up in ``make bench``)."""
    q = quotas(weights, table_size)
    m = table_size
    table = [EMPTY] * m
    reals = list(q)
    n = len(reals)
    params = [permutation_params(r, m) for r in reals]
    pointer = [0] * n
    have = [0] * n
    rounds = _rounds(weights, m)
    for t in range(1, rounds + 1):
        need = [max(0, -(-q[r] * t // rounds) - have[k]) for k, r in enumerate(reals)]
        order = list(range(n))
        while any(need):
            proposals: dict[int, tuple[int, int]] = {}   # slot -> (order, real position k)
            for k in range(n):
                offset, skip = params[k]
                found, j = 0, pointer[k]
                while found < need[k]:
                    slot = (offset + j * skip) % m
                    if table[slot] == EMPTY:
                        found += 1
                        if slot not in proposals or proposals[slot][0] > order[k]:
                            proposals[slot] = (order[k], k)
                        pointer[k] = j + 1
                    j += 1
            for slot, (_, k) in proposals.items():
                table[slot] = reals[k]
                have[k] += 1
                need[k] -= 1
    return np.array(table, dtype=np.int16)


def rebalance(current: np.ndarray, weights: Mapping[int, int]) -> np.ndarray:
    """Minimal-disruption update of a table in service to new ``weights``.

    Slots of reals no longer in ``weights`` are freed, and so are the slots a real holds above
    its new quota (the ones furthest down its preference list); only the freed slots are
    refilled (by rule 3, reals below quota claiming).  Loads end exactly at the quotas of
    :func:`quotas`, so max/mean load is that of :func:`populate`.
    """
    m = len(current)
    q = quotas(weights, m)
    table = np.asarray(current, dtype=np.int16).copy()
    if not q:
        table[:] = EMPTY
        return table
    reals = np.array(list(q), dtype=np.int64)
    table[~np.isin(table, reals)] = EMPTY
    for r, quota in q.items():
        slots = np.flatnonzero(table == r)
        excess = len(slots) - quota
        if excess > 0:
            offset, skip = permutation_params(r, m)
            rank = (slots - offset) * pow(skip, -1, m) % m   # position in r's preference list
            table[slots[np.argsort(rank)[-excess:]]] = EMPTY
    filler = _Filler(table, list(q))
    filler.fill(np.array(list(q.values()), dtype=np.int64), _rounds(weights, m))
    return table
