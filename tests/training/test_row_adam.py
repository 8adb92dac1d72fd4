"""Row-wise lazy Adam against a hand-written float64 reference, and against dense Adam where the
two must agree (every row touched at every step)."""
import math
from copy import deepcopy

import numpy as np
import pytest
import torch

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.model.sparse_rows import gather_rows
from cbns.training.optimizer import SplitOptimizer, build_optimizer
from cbns.training.row_adam import RowAdam, touched_rows


def reference_lazy_adam(table, steps, lr_per_step, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """The module docstring's update, one row at a time in plain Python floats."""
    rows, width = len(table), len(table[0])
    w = [list(map(float, r)) for r in table]
    m = [[0.0] * width for _ in range(rows)]
    v = [[0.0] * width for _ in range(rows)]
    count = [0] * rows
    b1, b2 = betas
    for (ids, grads), lr in zip(steps, lr_per_step):
        summed = {}
        for r, g in zip(ids, grads):
            acc = summed.setdefault(r, [0.0] * width)
            for k in range(width):
                acc[k] += g[k]
        for r, g in summed.items():
            count[r] += 1
            c = count[r]
            for k in range(width):
                gk = g[k] + weight_decay * w[r][k]
                m[r][k] = b1 * m[r][k] + (1 - b1) * gk
                v[r][k] = b2 * v[r][k] + (1 - b2) * gk * gk
                m_hat = m[r][k] / (1 - b1 ** c)
                v_hat = v[r][k] / (1 - b2 ** c)
                w[r][k] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return w, m, v, count


def random_steps(seed, rows=7, width=3, steps=6, per_step=5):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        ids = rng.integers(0, rows, per_step).tolist()  # repeats: copies of a row are summed
        out.append((ids, rng.normal(size=(per_step, width)).tolist()))
    return rng.normal(size=(rows, width)), out


def sparse_grad(ids, grads, shape):
    return torch.sparse_coo_tensor(torch.tensor([ids]), torch.tensor(grads, dtype=torch.float64), shape,
                                   check_invariants=True)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_adam_equals_the_hand_written_lazy_update(seed, weight_decay):
    table, steps = random_steps(seed)
    lrs = [0.1 * (1 - k / 8) for k in range(len(steps))]  # a schedule: the group's lr is read each step
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([p], lr=lrs[0], weight_decay=weight_decay, catch_up=False)
    for (ids, grads), lr in zip(steps, lrs):
        opt.param_groups[0]["lr"] = lr
        p.grad = sparse_grad(ids, grads, p.shape)
        opt.step()
    w, m, v, count = reference_lazy_adam(table, steps, lrs, weight_decay=weight_decay)
    state = opt.state[p]
    assert torch.allclose(p.detach(), torch.tensor(w, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(state["exp_avg"], torch.tensor(m, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(state["exp_avg_sq"], torch.tensor(v, dtype=torch.float64), rtol=0, atol=1e-12)
    assert state["row_steps"].tolist() == count


def test_untouched_rows_keep_weights_and_moments_bit_for_bit():
    table, steps = random_steps(3, rows=6)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([p], lr=0.1, catch_up=False)
    p.grad = sparse_grad([0, 1, 2, 3, 4, 5], np.ones((6, 3)).tolist(), p.shape)
    opt.step()
    before = {k: v.clone() for k, v in opt.state[p].items()}
    weights = p.detach().clone()
    p.grad = sparse_grad([1, 4, 1], np.ones((3, 3)).tolist(), p.shape)
    opt.step()
    untouched = [0, 2, 3, 5]
    assert torch.equal(p.detach()[untouched], weights[untouched])
    for key in ("exp_avg", "exp_avg_sq", "row_steps"):
        assert torch.equal(opt.state[p][key][untouched], before[key][untouched]), key
    assert opt.state[p]["row_steps"].tolist() == [1, 2, 1, 1, 2, 1]


@pytest.mark.parametrize("catch_up", [False, True])
def test_every_row_touched_every_step_is_dense_adam(catch_up):
    """Lazy and dense Adam differ only on rows a step leaves out: with none left out they agree."""
    g = torch.Generator().manual_seed(0)
    start = torch.randn(5, 4, generator=g, dtype=torch.float64)
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    lazy, dense = RowAdam([a], lr=0.05, weight_decay=0.01, catch_up=catch_up), torch.optim.Adam([b], lr=0.05, weight_decay=0.01)
    for step in range(6):
        grad = torch.randn(5, 4, generator=g, dtype=torch.float64)
        ids = torch.cat([torch.arange(5), torch.arange(5)])  # every row, twice: the copies are summed
        a.grad = torch.sparse_coo_tensor(ids[None], torch.cat([grad / 2, grad / 2]), a.shape)
        b.grad = grad
        for opt in (lazy, dense):
            opt.param_groups[0]["lr"] = 0.05 / (step + 1)
            opt.step()
    assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_a_one_dimensional_table_and_a_dense_gradient():
    """The item bias is ``[R]``; a dense gradient touches the rows with a non-zero entry."""
    p = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
    opt = RowAdam([p], lr=0.1, catch_up=False)
    p.grad = torch.tensor([0.0, 2.0, 0.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    opt.step()
    # Adam's first step is lr in the gradient's direction (up to eps), the other rows untouched.
    assert torch.allclose(p.detach(), torch.tensor([0, -0.1, 0, 0.1, 0, 0], dtype=torch.float64), atol=1e-8)
    assert opt.state[p]["row_steps"].tolist() == [0, 1, 0, 1, 0, 0]
    rows, values = touched_rows(torch.sparse_coo_tensor(torch.tensor([[4, 1, 4]]), torch.tensor([1.0, 2.0, 3.0]),
                                                        (6,)))
    assert rows.tolist() == [1, 4] and values.tolist() == [2.0, 4.0]


def test_gather_rows_gives_the_dense_gradient_as_sparse_rows():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(8, 3, generator=g, dtype=torch.float64)
    ids = torch.tensor([5, 0, 5, 7])
    upstream = torch.randn(4, 3, generator=g, dtype=torch.float64)
    a, b = weight.clone().requires_grad_(), weight.clone().requires_grad_()
    (gather_rows(a, ids) * upstream).sum().backward()
    (b[ids] * upstream).sum().backward()
    assert a.grad.is_sparse and a.grad._nnz() == 4  # one entry per lookup, not per table row
    assert torch.equal(a.grad.to_dense(), b.grad)


def tiny(sparse, item_tower="id", user_tower="id"):
    from cbns.api import assemble

    rng = np.random.default_rng(0)
    data = Interactions("toy", 30, 25, train=np.stack([rng.integers(0, 30, 120), rng.integers(0, 25, 120)], 1),
                        test=np.zeros((0, 2), dtype=np.int64))
    cfg = TrainConfig(data="toy", batch_size=16, dim=4, epochs=2, memory_size=8, threads=1, sparse_updates=sparse,
                      item_tower=item_tower, user_tower=user_tower, hidden_dim=5, lr=0.05)
    model, objective = assemble(cfg, data)
    return cfg, data, model, objective


def test_a_sparse_step_touches_only_the_batch_rows_and_its_first_step_is_dense_adams():
    """Step 1 of dense Adam moves no row without a gradient (m = v = 0 there), so the first step
    of both modes is the same update; rows outside the batch stay as they were."""
    from cbns.training.trainer import Trainer

    trainers = []
    for sparse in (True, False):
        cfg, data, model, objective = tiny(sparse)
        trainers.append(Trainer(cfg, data, model, objective, progress=False, verbose=False))
    sparse_t, dense_t = trainers
    start = {k: v.clone() for k, v in sparse_t.model.state_dict().items()}
    batch = sparse_t.train_pairs[:16]
    seen = sparse_t.model.sparse_parameters()
    assert len(seen) == 3 and isinstance(sparse_t.optimizer, SplitOptimizer) and sparse_t.optimizer.dense is None
    sparse_t.step(batch)
    dense_t.step(batch)
    got, want = sparse_t.model.state_dict(), dense_t.model.state_dict()
    for name in ("user_tower.embedding.weight", "item_tower.embedding.weight", "item_bias"):
        assert torch.allclose(got[name], want[name], rtol=0, atol=1e-6), name
    users, items = set(batch[:, 0].tolist()), set(batch[:, 1].tolist())
    others = [u for u in range(30) if u not in users]
    assert torch.equal(got["user_tower.embedding.weight"][others], start["user_tower.embedding.weight"][others])
    # the bank is empty at step 1: the item rows updated are the batch's items
    moved = (got["item_bias"] != start["item_bias"]).nonzero()[:, 0].tolist()
    assert set(moved) <= items and moved


def test_dense_parameters_keep_adam_and_both_states_round_trip():
    """An MLP tower's layers go to fused Adam, its tables to RowAdam; 3 steps, save, load into a
    fresh trainer, 2 more steps equal 5 steps straight."""
    from cbns.training.trainer import Trainer
    from cbns.training.training_state import load_training_state, training_state

    def fresh():
        cfg, data, model, objective = tiny(True, user_tower="gru")
        from cbns.data.history import HistoryContext

        contexts = HistoryContext(data, 3)
        return Trainer(cfg, data, model, objective, progress=False, verbose=False, contexts=contexts), contexts

    straight, contexts = fresh()
    opt = straight.optimizer
    assert isinstance(opt.dense, torch.optim.Adam) and opt.dense.defaults["fused"]
    dense_ids = {id(p) for g in opt.dense.param_groups for p in g["params"]}
    assert {id(p) for p in straight.model.user_tower.gru.parameters()} <= dense_ids
    assert len(opt.param_groups) == 2

    def run(trainer, steps):
        for k in steps:
            index = torch.arange(16 * k, 16 * k + 16) % len(trainer.train_pairs)
            trainer.step(trainer.train_pairs[index], contexts.for_pairs(index))

    run(straight, range(5))
    first, _ = fresh()
    run(first, range(3))
    state = training_state(first)
    assert set(state["optimizer"]) == {"dense", "sparse"}
    second, _ = fresh()
    load_training_state(second, state)
    run(second, range(3, 5))
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name


def test_plain_adam_without_sparse_updates():
    cfg, data, model, objective = tiny(False)
    opt = build_optimizer(model, 0.01, 0.0, sparse=False)
    assert isinstance(opt, torch.optim.Adam) and model.sparse_parameters() == []
    assert not model.user_tower.embedding.sparse


def dense_adam_with_sparse_gradients(start, steps, lrs, settle_at=(), eps=1e-8):
    """The reference: torch's dense Adam (foreach=False), the sparse gradients made dense (zero
    on the rows a step leaves out), against RowAdam in catch-up mode on the same sequence, settled
    after the steps in ``settle_at`` and at the end."""
    a = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    rows = RowAdam([a], lr=lrs[0], eps=eps)
    dense = torch.optim.Adam([b], lr=lrs[0], eps=eps, foreach=False)
    for n, ((ids, grads), lr) in enumerate(zip(steps, lrs)):
        a.grad = sparse_grad(ids, grads, a.shape)
        b.grad = a.grad.to_dense()
        for opt in (rows, dense):
            opt.param_groups[0]["lr"] = lr
            opt.step()
        if n in settle_at:
            rows.settle()
    rows.settle()
    return a.detach(), b.detach(), rows, dense


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_catch_up_is_dense_adam_on_rows_left_out_for_many_steps(seed):
    """Rows touched now and then (gaps of 1 to 60 steps) under a decaying rate: the weights and
    moments after settling are dense Adam's (eps, absent from the missed steps, is made
    negligible on both sides)."""
    table, steps = random_steps(seed, rows=9, width=4, steps=120, per_step=2)
    lrs = [0.05 * (0.5 + 0.5 * math.cos(math.pi * k / 120)) for k in range(120)]
    got, want, rows, dense = dense_adam_with_sparse_gradients(table, steps, lrs, settle_at=(30, 31, 77), eps=1e-12)
    assert torch.allclose(got, want, rtol=0, atol=1e-9)
    state, reference = rows.state[rows.param_groups[0]["params"][0]], dense.state[dense.param_groups[0]["params"][0]]
    assert torch.allclose(state["exp_avg"], reference["exp_avg"], rtol=1e-9, atol=1e-15)
    assert torch.allclose(state["exp_avg_sq"], reference["exp_avg_sq"], rtol=1e-9, atol=1e-15)
    assert state["last_step"].tolist() == [120] * 9


def test_catch_up_across_gaps_longer_than_the_momentum_window():
    """Rows left out for 1 to 700 steps, past the window of missed steps whose momentum is kept
    (264 at Adam's betas: rho^264 < 1e-12) and on both sides of it, settled in between: dense
    Adam's weights (the dropped momentum is below 1e-12 of a step)."""
    rng = np.random.default_rng(7)
    touches = {0: [0, 263, 528, 529, 1200], 1: [0, 264, 265, 900], 2: [0, 700, 701, 702], 3: list(range(0, 1300, 37))}
    steps = []
    for t in range(1300):
        ids = [r for r, at in touches.items() if t in at] or [4]
        steps.append((ids, rng.normal(size=(len(ids), 3)).tolist()))
    table = rng.normal(size=(5, 3))
    lrs = [0.02 * (0.5 + 0.5 * math.cos(math.pi * k / 1300)) for k in range(1300)]
    got, want, rows, _ = dense_adam_with_sparse_gradients(table, steps, lrs, settle_at=(100, 600, 1000), eps=1e-12)
    assert torch.allclose(got, want, rtol=0, atol=1e-9)
    assert (got - torch.tensor(table)).abs().min() > 1e-3  # every row moved


def test_catch_up_with_adams_eps_stays_close_to_dense_adam():
    """With the default eps the missed steps' denominators differ by eps: close, not equal."""
    table, steps = random_steps(5, rows=9, width=4, steps=200, per_step=2)
    got, want, _, _ = dense_adam_with_sparse_gradients(table, steps, [0.01] * 200)
    assert torch.allclose(got, want, rtol=0, atol=1e-6)
    assert (got - torch.tensor(table)).abs().max() > 0.1  # the rows did move


def test_catch_up_state_survives_a_checkpoint_in_its_own_dtypes():
    table, steps = random_steps(7, rows=6, width=3, steps=40, per_step=2)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float32))
    opt = RowAdam([p], lr=0.01)
    for ids, grads in steps[:20]:
        p.grad = sparse_grad(ids, grads, p.shape).float()
        opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    copy = RowAdam([q], lr=0.01)
    copy.load_state_dict(deepcopy(opt.state_dict()))  # as through a checkpoint file
    state = copy.state[q]
    assert state["last_step"].dtype == torch.long and state["moves"].dtype == torch.float32
    assert state["step"] == 20 and isinstance(state["step"], int)
    for ids, grads in steps[20:]:
        for param, o in ((p, opt), (q, copy)):
            param.grad = sparse_grad(ids, grads, param.shape).float()
            o.step()
    opt.settle()
    copy.settle()
    assert torch.equal(p, q)


def test_catch_up_refuses_a_momentum_that_does_not_die():
    with pytest.raises(ValueError, match="catch-up needs betas"):
        RowAdam([torch.nn.Parameter(torch.zeros(3))], betas=(0.99, 0.9))


def take_steps(p, opt, steps):
    """``opt`` steps ``p`` through ``steps`` (``(ids, grads)`` each, as sparse gradients),
    yielding ``(n, ids)`` after each step."""
    for n, (ids, grads) in enumerate(steps):
        p.grad = sparse_grad(ids, grads, p.shape)
        opt.step()
        yield n, ids


def skewed_steps(seed, rows, per_step, steps, width=3, short_every=0):
    """Steps naming ``per_step`` rows each (3 every ``short_every`` steps, as a short last batch),
    drawn with probabilities falling 2x a row, so the last rows are touched rarely (long gaps)
    while a step may name more entries than the table has rows."""
    rng = np.random.default_rng(seed)
    weights = 0.5 ** np.arange(rows)
    out = []
    for k in range(steps):
        n = 3 if short_every and k % short_every == short_every - 1 else per_step
        ids = rng.choice(rows, n, p=weights / weights.sum()).tolist()
        out.append((ids, rng.normal(size=(n, width)).tolist()))
    return rng.normal(size=(rows, width)), out


@pytest.mark.parametrize("per_step,short_every", [(3, 0), (16, 0), (16, 9)])
def test_catch_up_is_dense_adam_whether_a_step_names_fewer_or_more_entries_than_rows(per_step, short_every):
    """Entries fewer than rows take the per-entry path, more the whole-table path, and a short
    step among full ones switches between them: each gives dense Adam's trajectory (float64, eps
    made negligible), gaps of up to hundreds of steps."""
    table, steps = skewed_steps(11, rows=10, per_step=per_step, steps=400, short_every=short_every)
    lrs = [0.03 * (0.5 + 0.5 * math.cos(math.pi * k / 400)) for k in range(400)]
    got, want, rows, dense = dense_adam_with_sparse_gradients(table, steps, lrs, settle_at=(50, 51, 300), eps=1e-12)
    assert torch.allclose(got, want, rtol=0, atol=1e-9)
    state = rows.state[rows.param_groups[0]["params"][0]]
    reference = dense.state[dense.param_groups[0]["params"][0]]
    assert torch.allclose(state["exp_avg_sq"], reference["exp_avg_sq"], rtol=1e-9, atol=1e-15)
    touches = [[-1] + [t for t, (ids, _) in enumerate(steps) if r in ids] + [400] for r in range(10)]
    assert max(b - a for at in touches for a, b in zip(at, at[1:])) > 50  # some row missed many steps


@pytest.mark.parametrize("per_step", [3, 16])
def test_lazy_mode_whether_a_step_names_fewer_or_more_entries_than_rows(per_step):
    table, steps = skewed_steps(12, rows=6, per_step=per_step, steps=12)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([p], lr=0.1, weight_decay=0.05, catch_up=False)
    for ids, grads in steps:
        p.grad = sparse_grad(ids, grads, p.shape)
        opt.step()
    w, m, v, count = reference_lazy_adam(table, steps, [0.1] * len(steps), weight_decay=0.05)
    assert torch.allclose(p.detach(), torch.tensor(w, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(opt.state[p]["exp_avg_sq"], torch.tensor(v, dtype=torch.float64), rtol=0, atol=1e-12)
    assert opt.state[p]["row_steps"].tolist() == count


def earlier_layout(state: dict, lrs, betas=(0.9, 0.999)) -> dict:
    """A catch-up table state in the layout of the checkpoints written before ``moves``: a 0-d
    CPU ``step`` and ``coef[s - 1] = a_s = lr_s sqrt(1 - b2^s) / (1 - b1^s)`` (float64, 1024 long),
    the coefficients computed here from the learning rates."""
    b1, b2 = betas
    coef = torch.zeros(1024, dtype=torch.float64)
    for s, lr in enumerate(lrs, 1):
        coef[s - 1] = lr * math.sqrt(1 - b2 ** s) / (1 - b1 ** s)
    return {"exp_avg": state["exp_avg"].clone(), "exp_avg_sq": state["exp_avg_sq"].clone(),
            "last_step": state["last_step"].clone(), "step": torch.tensor(len(lrs)), "coef": coef}


@pytest.mark.parametrize("saved_at", [5, 300])
def test_a_checkpoint_in_the_earlier_layout_loads_and_continues_as_dense_adam(saved_at):
    """An optimizer state saved with per-step coefficients (before ``moves``) is converted on
    load: the run continued from it ends where dense Adam (float64) ends, as the run never saved
    does. Saved before and after the momentum window (264 steps)."""
    table, steps = random_steps(9, rows=8, width=3, steps=saved_at + 60, per_step=2)
    lrs = [0.02 * (1 - k / (2 * len(steps))) for k in range(len(steps))]
    straight, want, _, _ = dense_adam_with_sparse_gradients(table, steps, lrs, eps=1e-12)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    first = RowAdam([p], lr=lrs[0], eps=1e-12)
    for (ids, grads), lr in zip(steps[:saved_at], lrs):
        first.param_groups[0]["lr"] = lr
        p.grad = sparse_grad(ids, grads, p.shape)
        first.step()
    saved = first.state_dict()
    saved["state"][0] = earlier_layout(first.state[p], lrs[:saved_at])
    q = torch.nn.Parameter(p.detach().clone())
    second = RowAdam([q], lr=lrs[0], eps=1e-12)
    second.load_state_dict(deepcopy(saved))
    state = second.state[q]
    assert set(state) == {"exp_avg", "exp_avg_sq", "last_step", "step", "moves", "current"}
    assert state["step"] == saved_at and state["current"] is False  # not known: a whole step would settle first
    assert state["moves"].dtype == torch.float64
    assert torch.allclose(state["moves"][:saved_at + 1], first.state[p]["moves"][:saved_at + 1], rtol=1e-12, atol=0)
    for (ids, grads), lr in zip(steps[saved_at:], lrs[saved_at:]):
        second.param_groups[0]["lr"] = lr
        q.grad = sparse_grad(ids, grads, q.shape)
        second.step()
    second.settle()
    assert torch.allclose(q.detach(), want, rtol=0, atol=1e-9)
    assert torch.allclose(q.detach(), straight, rtol=0, atol=1e-12)


def meta_tables():
    """A 2-d table touched by fewer entries than rows, one by more, and a 1-d bias (a sparse
    gradient each), and a table with a dense gradient: every path of a step, on ``meta``."""
    shapes, entries = [(50, 8), (6, 4), (40,)], [12, 20, 30]
    params = [torch.nn.Parameter(torch.empty(s, device="meta")) for s in shapes]
    dense = torch.nn.Parameter(torch.empty(7, 3, device="meta"))

    def gradients():
        for p, n in zip(params, entries):
            ids = torch.empty(n, dtype=torch.long, device="meta")
            p.grad = torch.sparse_coo_tensor(ids[None], torch.empty(n, *p.shape[1:], device="meta"), p.shape,
                                             check_invariants=False)
        dense.grad = torch.empty(7, 3, device="meta")

    return params + [dense], gradients


@pytest.mark.parametrize("catch_up", [True, False])
def test_a_step_and_settle_on_meta_tensors_read_nothing_back(catch_up):
    """Tables, gradients and state on the ``meta`` device, where no value exists: a value read
    back (``.item()``, a data-dependent shape such as ``nonzero`` or ``coalesce``), or a tensor
    made on the CPU and mixed in, fails. A dispatch counter around the steps and ``settle``
    counts no op that would make a GPU wait."""
    from cbns.training.dispatch_count import DispatchCounter

    params, gradients = meta_tables()
    opt = RowAdam(params, lr=0.01, weight_decay=0.01, catch_up=catch_up)
    counter = DispatchCounter(raise_on_read=True)
    with counter:
        for _ in range(3):
            gradients()
            opt.step()
        opt.settle()
    assert counter.reads == 0 and counter.ops > 50
    for p in params:
        assert all(v.device.type == "meta" for v in opt.state[p].values() if isinstance(v, torch.Tensor))
    assert not catch_up or opt.state[params[0]]["step"] == 3


def test_the_meta_test_can_fail():
    """Merging the copies of a row (``coalesce``, as :func:`touched_rows` does for the
    data-parallel gather) gives a row count that depends on the values: it cannot run on
    ``meta``, so a step that did it would fail the test above."""
    ids = torch.empty(3, dtype=torch.long, device="meta")
    grad = torch.sparse_coo_tensor(ids[None], torch.empty(3, 2, device="meta"), (5, 2), check_invariants=False)
    with pytest.raises((NotImplementedError, RuntimeError)):
        touched_rows(grad)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_the_whole_table_step_is_dense_adam_at_every_step_every_row_included(weight_decay):
    """A table named by more entries than it has rows is stepped whole: every row moves at every
    step as dense Adam moves it (Adam's eps included, the rows without a gradient at a zero
    gradient), so no row is ever left behind. The reference is torch's dense Adam in float64 with
    the weight decay added by hand to the touched rows' gradient (RowAdam's decay acts on those
    only). Checked at every step, the moments too."""
    table, steps = skewed_steps(13, rows=10, per_step=16, steps=300)
    lrs = [0.03 * (0.5 + 0.5 * math.cos(math.pi * k / 300)) for k in range(300)]
    a = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    rows = RowAdam([a], weight_decay=weight_decay)
    dense = torch.optim.Adam([b], foreach=False)
    for n, ((ids, grads), lr) in enumerate(zip(steps, lrs)):
        a.grad = sparse_grad(ids, grads, a.shape)
        touched = torch.zeros(10, 1, dtype=torch.float64).index_fill_(0, torch.tensor(ids), 1.0)
        b.grad = a.grad.to_dense() + weight_decay * b.detach() * touched
        for opt in (rows, dense):
            opt.param_groups[0]["lr"] = lr
            opt.step()
        assert torch.allclose(a.detach(), b.detach(), rtol=0, atol=1e-12), n
        assert torch.equal(rows.state[a]["last_step"], torch.full((10,), n + 1)), n
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.allclose(rows.state[a][key], dense.state[b][key], rtol=1e-10, atol=1e-18), key
    assert (a.detach() - torch.tensor(table)).abs().max() > 0.1
    untouched = set(range(10)) - {r for ids, _ in steps[-20:] for r in ids}
    assert untouched  # rows without a gradient for 20 steps moved all the same, as dense Adam's do


def test_a_whole_table_step_after_a_per_entry_step_brings_every_row_to_the_step():
    """A short step (fewer entries than rows) leaves the rows it does not name behind; the next
    whole-table step catches them up first, so after it every row is current and the table is
    dense Adam's (eps made negligible: the catch-up leaves it out of the missed steps)."""
    table, steps = skewed_steps(14, rows=10, per_step=16, steps=113, short_every=7)  # a short one, then a full one
    _, want, _, _ = dense_adam_with_sparse_gradients(table, steps, [0.03] * 113, eps=1e-12)
    a = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([a], lr=0.03, eps=1e-12)
    for n, ids in take_steps(a, opt, steps):
        assert opt.state[a]["current"] == (len(ids) == 16), n
        if len(ids) == 16:
            assert torch.equal(opt.state[a]["last_step"], torch.full((10,), n + 1)), n
    assert len(steps[-1][0]) == 16 and len(steps[-2][0]) == 3  # compared unsettled, after a catch-up
    assert torch.allclose(a.detach(), want, rtol=0, atol=1e-9)


def test_whole_rows_fixes_the_choice_whatever_the_entry_count():
    """With ``whole_rows`` a table's step is chosen by its size alone: one no larger is stepped
    whole even at a step of few entries (every row current after it), a larger one per entry
    even at a step of more entries than rows (the rows it does not name left behind). The
    trainer passes its batch size, so one process and the gathered entries of several ranks
    take the same step."""
    table, steps = skewed_steps(15, rows=10, per_step=3, steps=5)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([p], whole_rows=10)
    for n, _ in take_steps(p, opt, steps):
        assert opt.state[p]["current"] and torch.equal(opt.state[p]["last_step"], torch.full((10,), n + 1))
    table, steps = skewed_steps(16, rows=10, per_step=16, steps=5)
    q = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    opt = RowAdam([q], whole_rows=9)
    for n, ids in take_steps(q, opt, steps):
        assert not opt.state[q]["current"]
        named = torch.zeros(10, dtype=torch.bool).index_fill_(0, torch.tensor(ids), True)
        assert torch.equal(opt.state[q]["last_step"][named], torch.full((int(named.sum()),), n + 1))
    assert (opt.state[q]["last_step"] < 5).any()  # the rarest rows were left behind


def test_a_state_saved_without_current_settles_its_whole_tables_first():
    """A state saved before ``current`` existed (``moves`` and ``last_step``, rows possibly left
    behind) loads with ``current`` False: the next whole-table step settles the table first, so
    the run continues as dense Adam (eps made negligible), never moving a stale row as if current."""
    table, steps = skewed_steps(17, rows=10, per_step=3, steps=40)  # per entry: rows left behind
    lrs = [0.03] * 80
    more = skewed_steps(18, rows=10, per_step=16, steps=40)[1]  # then whole-table steps
    _, want, _, _ = dense_adam_with_sparse_gradients(table, steps + more, lrs, eps=1e-12)
    p = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    first = RowAdam([p], lr=0.03, eps=1e-12, whole_rows=None)
    for _ in take_steps(p, first, steps):
        pass
    saved = first.state_dict()
    assert saved["state"][0].pop("current") is False
    q = torch.nn.Parameter(p.detach().clone())
    second = RowAdam([q], lr=0.03, eps=1e-12)
    second.load_state_dict(deepcopy(saved))
    assert second.state[q]["current"] is False
    for _ in take_steps(q, second, more):
        pass
    assert second.state[q]["current"]
    assert torch.allclose(q.detach(), want, rtol=0, atol=1e-9)
