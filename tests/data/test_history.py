"""User histories: no future leakage at training time, the right items at evaluation time."""
import numpy as np
import pytest
import torch

from cbns.data.event_splits import split_events
from cbns.data.events import EventLog
from cbns.data.history import HISTORY, HISTORY_LENGTH, HistoryContext, UserHistories


def random_log(seed=0, num_users=30, num_items=40, events=400, max_time=60):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users, events)
    items = rng.integers(0, num_items, events)
    times = rng.integers(0, max_time, events).astype(float)   # many ties within a user
    return EventLog("r", num_users, num_items, users, items, times)


def rows(context):
    h, n = context[HISTORY], context[HISTORY_LENGTH]
    return [h[r, :n[r]].tolist() for r in range(len(n))]


@pytest.mark.parametrize("max_len", [1, 3, 50])
def test_training_history_is_the_users_strictly_earlier_items_newest_last(max_len):
    log = random_log()
    users, items, times = log.users, log.items, log.times
    got = rows(UserHistories(users, items, times, log.num_users).before(torch.arange(len(users)), max_len))
    for k in range(len(users)):
        # Brute force: the user's events with an earlier time, in (time, file position) order.
        earlier = [j for j in range(len(users)) if users[j] == users[k] and times[j] < times[k]]
        earlier.sort(key=lambda j: (times[j], j))
        assert got[k] == [int(items[j]) for j in earlier][-max_len:], k
        assert all(times[j] < times[k] for j in earlier)   # never the target or anything later


def test_context_for_pairs_uses_train_only_and_eval_contexts_see_the_right_parts():
    data = split_events(random_log(1), "loo")
    ctx = HistoryContext(data, max_len=1000)
    got = rows(ctx.for_pairs(torch.arange(len(data.train))))
    for k, (u, _) in enumerate(data.train):
        t = data.train_time[k]
        want = sorted((data.train_time[j], j) for j in range(len(data.train))
                      if data.train[j, 0] == u and data.train_time[j] < t)
        assert got[k] == [int(data.train[j, 1]) for _, j in want]
    valid_hist, test_hist = rows(ctx.for_users("valid")), rows(ctx.for_users("test"))
    for u in range(data.num_users):
        train_items = sorted(data.train[data.train[:, 0] == u, 1].tolist())
        valid_items = data.valid[data.valid[:, 0] == u, 1].tolist()
        assert sorted(valid_hist[u]) == train_items
        assert sorted(test_hist[u]) == sorted(train_items + valid_items)
        test_item = data.test[data.test[:, 0] == u]
        if len(test_item):   # LOO: everything in the test history precedes the test event
            t = data.test_time[data.test[:, 0] == u][0]
            assert (data.train_time[data.train[:, 0] == u] <= t).all()


def test_padding_is_zero_right_aligned_and_width_is_the_longest_row():
    h = UserHistories(np.array([0, 0, 0, 1]), np.array([7, 8, 9, 5]), np.array([1.0, 2, 3, 1]), 3)
    c = h.latest(2)
    assert c[HISTORY].tolist() == [[8, 9], [5, 0], [0, 0]]
    assert c[HISTORY_LENGTH].tolist() == [2, 1, 0]


def test_without_times_file_order_stands_in():
    from cbns.data import Interactions
    data = Interactions("x", 2, 5, np.array([[0, 3], [0, 1], [1, 2], [0, 4]]), np.array([[0, 0]]))
    got = rows(HistoryContext(data, 10).for_pairs(torch.arange(4)))
    assert got == [[], [3], [], [3, 1]]
