"""Maglev lookup-table population (Eisenbud et al., NSDI 2016) with weights by repetition.

Each real ``r`` has a permutation of the ``M`` slots, ``(offset_r + j * skip_r) mod M``, with
``offset`` and ``skip`` taken from a 64-bit mix of the real's index, so the same real lands on
the same preferred slots whatever group it is in.  Reals take turns claiming their next free
preferred slot; a real of weight ``w`` takes ``w`` turns per round.  ``M`` must be prime so that
every permutation covers every slot.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["populate", "permutation_params", "is_prime", "EMPTY"]

#: Slot value of a table with no reals (never produced for a non-empty group).
EMPTY = -1


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n ** 0.5) + 1))


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


def populate(weights: Mapping[int, int], table_size: int) -> np.ndarray:
    """Fill a Maglev table.

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
    if not is_prime(table_size):
        raise ValueError(f"Maglev table size {table_size} is not prime")
    reals = sorted(r for r, w in weights.items() if w > 0)
    table = np.full(table_size, EMPTY, dtype=np.int16)
    if not reals:
        return table
    params = [permutation_params(r, table_size) for r in reals]
    turns = [weights[r] for r in reals]
    step = [0] * len(reals)
    filled = 0
    while True:
        for k, real in enumerate(reals):
            offset, skip = params[k]
            for _ in range(turns[k]):
                slot = (offset + step[k] * skip) % table_size
                while table[slot] != EMPTY:
                    step[k] += 1
                    slot = (offset + step[k] * skip) % table_size
                table[slot] = real
                step[k] += 1
                filled += 1
                if filled == table_size:
                    return table
