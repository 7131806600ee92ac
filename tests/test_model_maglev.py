"""Maglev population: coverage, balance, weights and disruption."""

import numpy as np
import pytest

from openslb.model.maglev import EMPTY, is_prime, populate, populate_loop, quotas, rebalance


def _loads(table, reals):
    return np.array([(table == r).sum() for r in reals])


def test_every_slot_filled_with_a_member():
    t = populate({1: 1, 2: 1, 3: 1}, 4093)
    assert set(np.unique(t)) == {1, 2, 3}


def test_empty_group():
    assert (populate({}, 13) == EMPTY).all()


def test_non_prime_refused():
    with pytest.raises(ValueError, match="not prime"):
        populate({1: 1}, 4096)


@pytest.mark.parametrize("n", [4, 8, 16, 40])
def test_balance_within_one_percent(n):
    m = 4093 if 100 * n <= 4093 else 4099
    assert is_prime(m) and m >= 100 * n
    loads = _loads(populate({r: 1 for r in range(n)}, m), range(n))
    assert loads.max() / loads.mean() <= 1.01


def test_weights_by_repetition():
    t = populate({0: 1, 1: 3}, 4093)
    share = (t == 1).sum() / len(t)
    assert abs(share - 0.75) < 0.01


@pytest.mark.parametrize("n", [4, 8, 10, 20, 40])
def test_disruption_when_one_real_leaves(n):
    m = 4093
    assert m >= 100 * n or n > 40
    before = populate({r: 1 for r in range(n)}, m)
    for gone in (0, n // 2, n - 1):
        after = populate({r: 1 for r in range(n) if r != gone}, m)
        moved = (before != after).mean()
        assert moved >= (before == gone).mean()  # the departed real's slots must move
        assert moved <= 2 / n, f"removing real {gone} of {n} moved {moved:.3f} > {2 / n:.3f}"


@pytest.mark.parametrize("weights,m", [
    ({1: 1, 2: 1, 3: 1}, 13), ({1: 1, 2: 3, 5: 2}, 4093), ({r: 1 for r in range(8)}, 4093),
    ({r: r % 5 + 1 for r in range(40)}, 4099), ({r: r % 48 + 1 for r in range(120)}, 8191)])
def test_numpy_population_equals_the_plain_loop(weights, m):
    assert (populate(weights, m) == populate_loop(weights, m)).all()


def test_loads_are_the_quotas():
    weights = {r: r % 7 + 1 for r in range(30)}
    q = quotas(weights, 4093)
    assert sum(q.values()) == 4093
    t = populate(weights, 4093)
    assert {r: int((t == r).sum()) for r in weights} == q


def test_rebalance_moves_only_the_departed_reals_slots():
    before = populate({r: 1 for r in range(8)}, 4093)
    after = rebalance(before, {r: 1 for r in range(8) if r != 3})
    moved = before != after
    assert (before[moved] == 3).all() and (before == 3).sum() == moved.sum()
    loads = np.bincount(after)[[r for r in range(8) if r != 3]]
    assert loads.max() / loads.mean() <= 1.01


def test_rebalance_on_join_moves_only_the_newcomers_share():
    before = populate({r: 1 for r in range(8)}, 4093)
    after = rebalance(before, {r: 1 for r in range(9)})
    moved = before != after
    assert (after[moved] == 8).all() and moved.sum() == quotas({r: 1 for r in range(9)}, 4093)[8]
    assert (after == 8).sum() == moved.sum()
