"""Picks for the fast paths: shallow ways to select one of many values.

Synthesis maps a priority chain (``If``/``Elif`` over many flags), prefix ORs, or a binary
index into a wide ``Array`` as chains or a decoder in front of a multiplexer tree; these helpers
write the logic as the shallow trees wanted, for the paths that set fmax (docs/pipeline.md,
"Timing on ECP5").  Plain functions on Amaranth values (no ports, no latency: they build
combinational logic in the caller's module).
"""

from __future__ import annotations

import functools
import operator

from amaranth import Mux

__all__ = ["first_set", "one_of"]


def first_set(candidates: list) -> tuple:
    """Whether any of ``candidates`` (``(flag, value)`` pairs) is flagged, and the value of the
    first that is (the last candidate's when none is).

    A balanced tree of 2:1 multiplexers: log2 n levels, where a priority chain, and prefix ORs
    too, come out of synthesis as a chain of one LUT per candidate or so."""
    while len(candidates) > 1:
        paired = []
        for k in range(0, len(candidates) - 1, 2):
            (flag0, value0), (flag1, value1) = candidates[k], candidates[k + 1]
            paired.append((flag0 | flag1, Mux(flag0, value0, value1)))
        candidates = paired + candidates[len(candidates) & ~1:]
    return candidates[0]


def one_of(choices: list):
    """The value of the one choice (``(select, value)`` pairs) whose select is set, 0 when none
    is; the selects must be one-hot.  An AND-OR: no decoder or priority in front."""
    return functools.reduce(operator.or_, [Mux(select, value, 0) for select, value in choices])
