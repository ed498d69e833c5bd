"""Active pairs: the information score, pair selection and the task order's leasing invariants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.active_pairs import TaskInfo, fit_bt, order_tasks, pair_information, select_pairs
from bench.active_pairs import run


def test_fit_bt_recovers_strengths_and_shrinks_uncertainty_with_votes():
    rng = np.random.default_rng(0)
    theta = np.array([1.0, 0.3, -0.2, -1.1])
    wins = np.zeros((4, 4))
    for _ in range(20000):
        i, j = rng.choice(4, 2, replace=False)
        if rng.random() < 1 / (1 + np.exp(-(theta[i] - theta[j]))):
            wins[i, j] += 1
        else:
            wins[j, i] += 1
    model = fit_bt(wins)
    assert np.allclose(model.theta - model.theta.mean(), theta - theta.mean(), atol=0.06)
    prior_only = fit_bt(np.zeros((4, 4)))
    # the gaps are what votes inform (the common shift stays at the prior)
    i, j = np.triu_indices(4, 1)
    assert np.all(model.gap(i, j)[1] < prior_only.gap(i, j)[1] / 20)


def test_information_prefers_close_uncertain_pairs_and_few_votes():
    info = pair_information(gap_mean=[0.0, 3.0, 0.0], gap_var=[1.0, 1.0, 0.01])
    assert info[0] > info[1] and info[0] > info[2]
    bonus = pair_information(gap_mean=[0.0, 0.0], gap_var=[0.5, 0.5], labels=[0, 5], few_votes_bonus=0.1)
    assert bonus[0] > bonus[1]
    with pytest.raises(ValueError):
        pair_information()


def test_select_pairs_spreads_a_batch_over_the_uncertain_pairs():
    wins = np.zeros((5, 5))
    wins[0, 4] = wins[1, 4] = 50  # 4 is clearly last; 0..3 unknown among themselves
    model = fit_bt(wins)
    pairs = np.array(list(itertools.combinations(range(5), 2)))
    chosen = pairs[select_pairs(model, pairs, 4)]
    assert len({tuple(p) for p in chosen}) == 4  # no repeats within a batch here
    assert not any(set(p) <= {0, 4} or set(p) <= {1, 4} for p in chosen)


def test_exploration_mixes_uniform_picks_into_the_batch():
    wins = np.zeros((5, 5))
    wins[0, 4] = wins[1, 4] = 50  # pairs with 4 are settled: the greedy never asks for them
    model = fit_bt(wins)
    pairs = np.array(list(itertools.combinations(range(5), 2)))
    settled = {i for i, p in enumerate(pairs) if set(p) <= {0, 4} or set(p) <= {1, 4}}
    greedy = select_pairs(model, pairs, 200, rng=np.random.default_rng(1), explore=0.0)
    mixed = select_pairs(model, pairs, 200, rng=np.random.default_rng(1), explore=0.5)
    assert not settled & set(greedy.tolist())
    assert 0 < sum(int(c) in settled for c in mixed) < 60  # about 2/10 of the random half
    assert len(set(mixed.tolist())) == len(pairs)  # every pair is asked now and then
    with pytest.raises(ValueError, match="share"):
        select_pairs(model, pairs, 3, explore=1.5)


def test_active_needs_fewer_votes_than_uniform_on_a_small_arena():
    kw = {"n_models": 10, "batch": 10, "max_votes": 6000, "target": 0.9, "checkpoints": [1500]}
    uniform = [run(seed=s, policy="uniform", **kw)[0] or 6000 for s in range(3)]
    active = [run(seed=s, policy="active", **kw)[0] or 6000 for s in range(3)]
    assert sum(active) < sum(uniform), (active, uniform)


def tasks_strategy():
    return st.lists(
        st.builds(
            TaskInfo,
            task_id=st.integers(1, 10_000),
            model_a=st.one_of(st.none(), st.integers(0, 4)),
            model_b=st.one_of(st.none(), st.integers(0, 4)),
            labels=st.integers(0, 4),
            open_leases=st.integers(0, 2),
            target=st.integers(1, 5),
        ),
        max_size=40,
        unique_by=lambda t: t.task_id,
    )


@settings(max_examples=60, deadline=None)
@given(tasks_strategy(), st.integers(1, 5))
def test_order_keeps_the_leasing_invariants(tasks, explore_every):
    rng = np.random.default_rng(1)
    model = fit_bt(rng.integers(0, 5, (5, 5)).astype(float))
    open_ids = {t.task_id for t in tasks if t.labels + t.open_leases < t.target}
    default = order_tasks(tasks)
    # default: fewest labels first, no over-assignment
    assert set(default) == open_ids and len(default) == len(open_ids)
    loads = {t.task_id: t.labels + t.open_leases for t in tasks}
    assert [loads[i] for i in default] == sorted(loads[i] for i in default)
    active = order_tasks(tasks, model=model, policy="active", explore_every=explore_every)
    assert sorted(active) == sorted(open_ids)  # a permutation: nothing over-assigned, nothing lost
    # no starvation: the k-th fewest-labels task is placed by slot k * explore_every
    for k, task_id in enumerate(default, start=1):
        assert active.index(task_id) < k * explore_every
    assert (
        order_tasks(tasks, model=model, policy="active", explore_every=explore_every, limit=3) == active[:3]
    )


def test_order_puts_informative_pairs_first_and_rejects_bad_policy():
    wins = np.zeros((3, 3))
    wins[0, 2] = 100  # 0 >> 2 settled; 0 vs 1 unknown
    model = fit_bt(wins)
    tasks = [TaskInfo(1, 0, 2, labels=1, target=3), TaskInfo(2, 0, 1, labels=1, target=3)]
    assert order_tasks(tasks, model=model, policy="active", explore_every=10) == [2, 1]
    assert order_tasks(tasks) == [1, 2]  # default stays fewest-labels (then id)
    with pytest.raises(ValueError, match="policy"):
        order_tasks(tasks, policy="random")
