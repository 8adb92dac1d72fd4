"""Adam over the rows of embedding tables: a step costs the rows it touches, not the table.

For a table ``W [R, ...]`` whose gradient names the rows a step touched (a sparse COO gradient,
as ``nn.Embedding(sparse=True)`` and :func:`cbns.model.sparse_rows.gather_rows` give: one entry
per lookup, copies of a row summed), two semantics:

**Catch-up (the default, ``catch_up=True``): dense Adam, computed lazily.** Dense Adam moves a
row at every step, also at the steps that give it no gradient: its moments decay
(``m <- b1 m``, ``v <- b2 v``) and the momentum still moves it. With a zero gradient those
steps have a closed form: ``k`` steps after the row's last gradient (moments ``m0``, ``v0``),
step ``s`` moves it by

    - a_s * rho^k * m0 / sqrt(v0),    a_s = lr_s * sqrt(1 - b2^s) / (1 - b1^s),  rho = b1 / sqrt(b2)

So a row last touched at step ``s`` has missed, by step ``t``, the moves
``F[s] * m0 / sqrt(v0)`` with ``F[s] = sum_{u = s+1 .. min(t, s+K)} a_u rho^(u-s)``. Each table
keeps ``F`` (``moves``, one value a step) and each row the step it is current at
(``last_step``); every step adds its ``a_t rho^j`` to the ``K`` newest entries of ``F`` (one
kernel of ``K`` elements, whatever the table's size). When a row is touched again (or
:meth:`RowAdam.settle` brings every row to the current step, before the tables are read whole)
its missed moves are one gather ``F[last_step]``, its moments decay by ``b^gap``, then the
step's own update is made as Adam makes it. The result is dense Adam's up to float rounding,
except for ``eps`` in the missed steps (left out of their denominators: ``sqrt(v)`` dwarfs it
unless a row's momentum has long died) and for momentum older than ``K`` steps
(``rho^K < 1e-12``, dropped). Weight decay acts on the touched rows only. Requires ``rho < 1``
(``b1 < sqrt(b2)``, true of Adam's defaults), so that the momentum dies.

**Lazy (``catch_up=False``).** Each touched row is updated as Adam would update it if the steps
that touched it were the only steps:

    c_r <- c_r + 1                                   (the row's own step count)
    g   <- g + wd * W[r]                             (weight decay, on touched rows only)
    m_r <- b1 m_r + (1 - b1) g,    v_r <- b2 v_r + (1 - b2) g^2
    W[r] <- W[r] - lr * (m_r / (1 - b1^c_r)) / (sqrt(v_r / (1 - b2^c_r)) + eps)

Rows a step does not touch keep their weights and moments exactly (lazy moments: no decay while
a row is absent, and no momentum step either). Measured on Gowalla (BENCHMARKS.md) it learns
far slower than dense Adam: a row touched once in ~15 steps loses the momentum moves dense Adam
makes between its gradients, several times its own step.

**On a device.** A step never reads the device back: every tensor it makes has a shape fixed by
the gradient's entry count ``N`` (the lookups of the batch, the same every step) or by the table,
not by how many distinct rows the entries name. The copies of a row are not merged (merging
gives a data-dependent row count, a read): each entry gets its row's summed gradient (a sort and
``searchsorted`` name the row's first copy, an ``index_add_`` sums onto it), every copy computes
the same update, and the writes of the copies are the same values. A table with no more rows
than entries (MovieLens-100k's users and items at a batch of 2048) is cheaper stepped whole, and
then the lazy catch-up has nothing to save: its gradient is summed into a table-sized one and
the table takes dense Adam's step, every row moving (those without a gradient as at a zero
gradient, Adam's ``eps`` included), so its rows stay current. The tables stepped whole share
each stage of that step, one ``torch._foreach_*`` op for all of them (a few kernels on a GPU
instead of one per table); the tables stepped per entry share the stages whose operands have
one shape per table the same way. Rows a per-entry step left behind (a short last batch, when
the choice is by entry count) are caught up before the next whole step.
The step count is a host integer (``state["step"]``), so the bias corrections and ``a_t`` are
host scalars, as in ``torch.optim.Adam``'s default. ``F`` grows by doubling at host-known steps
(1024, 2048, ...): between those its shape, like every other, is fixed.

``lr`` is the group's current value, so a learning-rate schedule applies as it does to Adam. A
dense gradient (a table used through ``W[ids]`` by a custom tower) is taken whole: the rows whose
gradient has a non-zero entry are the touched ones.
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

#: Missed steps whose momentum is still applied: ``rho^k`` below this is dropped.
NEGLIGIBLE = 1e-12
#: State kept in its own dtype through a checkpoint (``Optimizer.load_state_dict`` would cast
#: every floating tensor to the parameter's dtype).
EXACT_STATE = ("last_step", "row_steps", "moves")
#: The first capacity of ``moves`` (steps); it doubles when full.
FIRST_CAPACITY = 1024


class RowAdam(Optimizer):
    """Row-wise Adam (see the module docstring) for tables indexed along dim 0.

    Args:
        params: the tables (any shape ``[R, ...]``, a 1-d ``[R]`` item bias included).
        lr, betas, eps: as for ``torch.optim.Adam``.
        weight_decay: L2 added to the gradient of the touched rows (Adam's ``weight_decay``,
            on those rows only).
        catch_up: dense Adam's trajectory computed lazily (True), or lazy moments (False).
        whole_rows: tables of at most this many rows are stepped whole at every step, larger ones
            per entry; None: a table is stepped whole at the steps that name at least as many
            entries as it has rows. A fixed bound makes the choice independent of how the entries
            arrive (one process, or the gathered entries of several ranks).

    State per table: ``exp_avg`` and ``exp_avg_sq`` (shaped like the table); with ``catch_up``
    ``step`` (the table's step count, a Python int), ``last_step`` (``[R]`` int64, the step each
    row is current at), ``current`` (a Python bool: every row is current at ``step``) and
    ``moves`` (``[capacity]``, ``F`` of the module docstring, float32 or the table's dtype if
    wider); without it ``row_steps`` (``[R]`` int64, each row's update
    count). The tensors on the table's device; all in :meth:`state_dict`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, catch_up: bool = True, whole_rows: int | None = None):
        self.catch_up, self.whole_rows = catch_up, whole_rows
        if catch_up and not betas[0] < math.sqrt(betas[1]):
            raise ValueError(f"catch-up needs betas[0] < sqrt(betas[1]) (a dying momentum), got {betas}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0 or weight_decay < 0:
            raise ValueError(f"eps must be > 0 and weight_decay >= 0, got {eps} and {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self._powers: dict = {}  # (betas, dtype, device) -> rho^K .. rho^1, made once

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``Optimizer.load_state_dict``, which casts every floating state tensor to its
        parameter's dtype; the step counts and ``moves`` are put back in their own dtypes. A state
        saved in the earlier layout (a tensor ``step`` and the per-step coefficients ``coef``) is
        converted: ``moves`` is formed from ``coef`` (:func:`moves_from_coefficients`)."""
        exact = {index: {k: v.clone() for k, v in saved.items() if k in EXACT_STATE + ("coef", "step")
                         and isinstance(v, torch.Tensor)}
                 for index, saved in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        for index, saved in exact.items():
            p = params[int(index)]
            state = self.state[p]
            if "step" in saved:  # the earlier layout: a 0-d CPU tensor
                state["step"] = int(saved.pop("step"))
            if self.catch_up:
                state.setdefault("current", False)  # not saved: the next whole step settles first
            if "coef" in saved:
                del state["coef"]
                saved["moves"] = moves_from_coefficients(saved.pop("coef"), state["step"], group_of[id(p)]["betas"])
            for key, value in saved.items():
                if key == "moves":
                    value = value.to(moves_dtype(p))
                state[key] = value.to(p.device)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # step -> the (table, state, rows, gradient, touched) stepped whole, and per entry
            by_step: dict[int, tuple[list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state_of(p)
                whole = None if self.whole_rows is None else p.shape[0] <= self.whole_rows
                if not self.catch_up:
                    self._lazy_update(p, state, group, *gradient_entries(p.grad, whole=whole))
                    continue
                rows, grad, touched = gradient_entries(p.grad, touched=bool(group["weight_decay"]), whole=whole)
                if rows is None and not state["current"]:  # rows a per-entry step left behind: brought up first
                    self._settle_table(p, state, group)
                whole_tables, entry_tables = by_step.setdefault(state["step"], ([], []))
                (whole_tables if rows is None else entry_tables).append((p, state, rows, grad, touched))
            for whole_tables, entry_tables in by_step.values():
                if whole_tables:
                    self._dense_step(whole_tables, group)
                if entry_tables:
                    self._entry_step(entry_tables, group)
        return loss

    def _state_of(self, p: torch.Tensor) -> dict:
        """``p``'s state, made at its first step."""
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if self.catch_up:
                state["step"] = 0
                state["last_step"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
                state["moves"] = torch.zeros(FIRST_CAPACITY, dtype=moves_dtype(p), device=p.device)
                state["current"] = True
            else:
                state["row_steps"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
        return state

    def _lazy_update(self, p: torch.Tensor, state: dict, group: dict, rows, grad, touched) -> None:
        """Lazy mode: one table's step on its entries ``rows, grad``, or (``rows`` None) on the
        whole table's gradient, the rows ``touched`` updated and the others kept as they are."""
        counts = state["row_steps"]
        if rows is None:
            targets = (p, state["exp_avg"], state["exp_avg_sq"])
            new = self._lazy_step(*targets, counts, grad, group)
            keep = touched.view((-1,) + (1,) * (p.dim() - 1))
            for target, value in zip(targets, new):
                torch.where(keep, value, target, out=target)
            counts.add_(touched)
            return
        new = self._lazy_step(p.index_select(0, rows), state["exp_avg"].index_select(0, rows),
                              state["exp_avg_sq"].index_select(0, rows), counts.index_select(0, rows), grad, group)
        for target, value in zip((p, state["exp_avg"], state["exp_avg_sq"]), new):
            target.index_copy_(0, rows, value)
        counts.index_copy_(0, rows, counts.index_select(0, rows).add_(1))  # the copies of a row write one count

    def _dense_step(self, tables: list, group: dict) -> None:
        """Dense Adam's step for ``tables`` (``(table, state, None, gradient, touched)``, every
        row current at the same step): every row moves, those without a gradient as dense Adam
        moves them at a zero gradient, so every row stays current. One ``_foreach`` op per stage
        for all the tables; weight decay on the ``touched`` rows only."""
        beta1, beta2 = group["betas"]
        weights, m, v, grads = [], [], [], []
        for p, state, _, grad, touched in tables:
            if group["weight_decay"]:
                keep = touched.view((-1,) + (1,) * (p.dim() - 1))
                grad = grad.add(torch.where(keep, p, 0), alpha=group["weight_decay"])
            weights.append(p)
            m.append(state["exp_avg"])
            v.append(state["exp_avg_sq"])
            grads.append(grad)
        states = [state for _, state, _, _, _ in tables]
        _, step_size, root2 = self._next_step(states, group)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, group["eps"] * root2)
        torch._foreach_addcdiv_(weights, m, denom, value=-step_size)
        # every row is now current at t: no row will read moves[s] for s < t, so this step adds
        # nothing to them (moves[t] and later fill as later per-entry steps are taken)
        torch._foreach_add_([state["last_step"] for state in states], 1)

    def _lazy_step(self, weights, m, v, count, grad, group: dict):
        """The lazy update of rows ``weights, m, v [n, ...]`` updated ``count [n]`` times before,
        with gradient ``grad [n, ...]``: their new weights and moments (new tensors)."""
        beta1, beta2 = group["betas"]
        if group["weight_decay"]:
            grad = grad.add(weights, alpha=group["weight_decay"])
        m = m.lerp(grad, 1 - beta1)
        v = (v * beta2).addcmul_(grad, grad, value=1 - beta2)
        power = count.add(1).to(weights.dtype).view((-1,) + (1,) * (weights.dim() - 1))
        correction1 = 1 - torch.pow(beta1, power)
        correction2 = 1 - torch.pow(beta2, power)
        denom = (v / correction2).sqrt_().add_(group["eps"])
        return weights.addcdiv(m, denom * correction1, value=-group["lr"]), m, v

    def _entry_step(self, tables: list, group: dict) -> None:
        """Step ``t``'s update of the ``tables`` stepped per entry (``(table, state, rows [n],
        gradient [n, ...], None)``, their states at the same step): each entry's row is brought
        from the step it is current at (``last``) to ``t`` (the moves it missed, its moments
        decayed), then takes Adam's own step (the bias corrections host scalars), and is written
        back. The per-row factors (missed moves, decays) are a few ops a table; the stages whose
        operands have one shape per table are one ``_foreach`` op for all the tables."""
        beta1, beta2 = group["betas"]
        states = [state for _, state, _, _, _ in tables]
        t, step_size, root2 = self._next_step(states, group)
        weights, m, v, grads, lasts, decay1, decay2 = [], [], [], [], [], [], []
        for p, state, rows, grad, _ in tables:
            last = state["last_step"].index_select(0, rows)
            weights.append(p.index_select(0, rows))
            m.append(state["exp_avg"].index_select(0, rows))
            v.append(state["exp_avg_sq"].index_select(0, rows))
            grads.append(grad)
            lasts.append(last)
            # the missed steps' decays and this one's, in one power
            gap = (t - last).to(p.dtype).view((-1,) + (1,) * (p.dim() - 1))
            decay1.append(torch.pow(beta1, gap))
            decay2.append(torch.pow(beta2, gap))
        move_missed(weights, m, v, lasts, [state["moves"] for state in states])
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, weights, alpha=group["weight_decay"])
        for mi, vi, d1, d2 in zip(m, v, decay1, decay2):
            mi.mul_(d1)
            vi.mul_(d2)
        torch._foreach_add_(m, grads, alpha=1 - beta1)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, group["eps"] * root2)
        torch._foreach_addcdiv_(weights, m, denom, value=-step_size)
        for (p, state, rows, _, _), *new in zip(tables, weights, m, v):
            for target, value in zip((p, state["exp_avg"], state["exp_avg_sq"]), new):
                target.index_copy_(0, rows, value)
            state["last_step"].index_fill_(0, rows, t)
            state["current"] = False
        self._add_momentum_moves([state["moves"] for state in states], t, step_size, group["betas"])

    @staticmethod
    def _next_step(states: list[dict], group: dict) -> tuple[int, float, float]:
        """Advance the states (at one step) to ``t``, growing their ``moves`` where full; returns
        ``(t, a_t, sqrt(1 - b2^t))``."""
        beta1, beta2 = group["betas"]
        t = states[0]["step"] + 1
        for state in states:
            state["step"] = t
            if t >= len(state["moves"]):  # moves[t] must exist: rows touched now read it later
                state["moves"] = torch.cat([state["moves"], torch.zeros_like(state["moves"])])
        root2 = math.sqrt(1 - beta2 ** t)
        return t, group["lr"] * root2 / (1 - beta1 ** t), root2

    def _add_momentum_moves(self, moves: list[torch.Tensor], t: int, step_size: float, betas) -> None:
        """``F[s] += a_t rho^(t-s)`` for the ``K`` steps ``s`` before ``t`` (fewer at the start), in
        each of the tables' ``moves`` (one dtype and device)."""
        key = (tuple(betas), moves[0].dtype, moves[0].device)
        if key not in self._powers:
            rho = betas[0] / math.sqrt(betas[1])
            window = max(1, math.ceil(math.log(NEGLIGIBLE) / math.log(rho))) if rho > 0 else 1
            exponents = torch.arange(window, 0, -1, dtype=torch.float64, device=moves[0].device)  # made there
            self._powers[key] = torch.pow(rho, exponents).to(moves[0].dtype)
        powers = self._powers[key]  # [K]: rho^K .. rho^1, for s = t-K .. t-1
        start = max(0, t - len(powers))
        powers = powers if start else powers[len(powers) - t:]
        torch._foreach_add_([f[start:t] for f in moves], [powers] * len(moves), alpha=step_size)

    @torch.no_grad()
    def settle(self, block: int = 1 << 14) -> None:
        """Bring every row to the current step (catch-up mode; a no-op otherwise): the steps each
        row missed since its last update, applied as dense Adam applies them. O(rows) in blocks
        of ``block`` rows; called before the tables are read whole (evaluation, export)."""
        if not self.catch_up:
            return
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                self._settle_table(p, state, group, block)

    @staticmethod
    def _settle_table(p: torch.Tensor, state: dict, group: dict, block: int = 1 << 14) -> None:
        """Every row of ``p`` brought to the current step, ``block`` rows at a time."""
        t, (beta1, beta2) = state["step"], group["betas"]
        for s in range(0, p.shape[0], block):
            rows = slice(s, min(s + block, p.shape[0]))
            weights, m, v, last = p[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows], state["last_step"][rows]
            move_missed([weights], [m], [v], [last], [state["moves"]])
            gap = (t - last).to(p.dtype).view((-1,) + (1,) * (p.dim() - 1))
            m.mul_(torch.pow(beta1, gap))
            v.mul_(torch.pow(beta2, gap))
            last.fill_(t)
        state["current"] = True


def move_missed(weights: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor],
                last: list[torch.Tensor], moves: list[torch.Tensor]) -> None:
    """In place, for each table ``i``: its rows ``weights[i] [n, ...]``, current at steps
    ``last[i] [n]`` (moments ``m[i], v[i]``), moved by dense Adam's zero-gradient steps since
    (``moves[i][last] * m / sqrt(v)``); the moments' decay is the caller's. Rows with ``v = 0``
    (never touched) have ``m = 0`` and stay. The full-shape stages are one ``_foreach`` op for
    all the tables."""
    moved = [mi * f.index_select(0, at).to(w.dtype).view((-1,) + (1,) * (w.dim() - 1))
             for w, mi, at, f in zip(weights, m, last, moves)]
    root_v = torch._foreach_sqrt(v)
    # 0 / (0 + tiny) = 0; beside sqrt(v) of any v > 0 it is nothing
    torch._foreach_add_(root_v, max(torch.finfo(x.dtype).tiny for x in v))
    torch._foreach_addcdiv_(weights, moved, root_v, value=-1)


def moves_dtype(p: torch.Tensor) -> torch.dtype:
    """The dtype of a table's ``moves``: float32, or the table's if wider (float64)."""
    return torch.promote_types(p.dtype, torch.float32) if p.is_floating_point() else torch.float32


def moves_from_coefficients(coef: torch.Tensor, step: int, betas) -> torch.Tensor:
    """``moves`` (float64, the capacity of ``coef``) from the per-step coefficients of the earlier
    state layout, ``coef[s - 1] = a_s`` for ``s = 1 .. step``: ``F[s] = sum_{j=1..K, s+j <= step}
    a_(s+j) rho^j``."""
    rho = betas[0] / math.sqrt(betas[1])
    window = max(1, math.ceil(math.log(NEGLIGIBLE) / math.log(rho))) if rho > 0 else 1
    a = coef.double()[:step]
    moves = torch.zeros(max(len(coef), step + 1), dtype=torch.float64)
    for j in range(1, min(window, step) + 1):  # F[s] += a_(s+j) rho^j for s = 0 .. step - j
        moves[:step - j + 1] += a[j - 1:] * rho ** j
    return moves


def gradient_entries(grad: torch.Tensor, touched: bool = True, whole: bool | None = None):
    """What a step updates, in shapes that do not depend on the values:

    - ``(rows [N], grad [N, ...], None)`` for a sparse gradient not taken ``whole`` (None: one with
      fewer entries ``N`` than table rows ``R``): its entries in their order, each with its row's
      summed gradient (:func:`row_totals`);
    - ``(None, grad [R, ...], touched [R])`` otherwise: the whole table's gradient (a sparse one's
      entries added into it) and the rows it touches (for a dense one, those with a non-zero
      entry; None when ``touched`` is False). A dense gradient is always taken whole.
    """
    if grad.is_sparse:
        rows, values = grad._indices()[0], grad._values()
        if (len(rows) < grad.shape[0]) if whole is None else not whole:  # shapes only, no read
            return rows, row_totals(rows, values), None
        table = values.new_zeros(grad.shape).index_add_(0, rows, values)
        if not touched:
            return None, table, None
        return None, table, torch.zeros(grad.shape[0], dtype=torch.bool, device=grad.device).index_fill_(0, rows, True)
    return None, grad, grad.reshape(grad.shape[0], -1).ne(0).any(1) if touched else None


def row_totals(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[N, ...]``: for each entry ``(rows[i], values[i])``, the sum of the values of every entry
    of its row. Each entry's row is named by the position of the row's first copy among the
    sorted rows, so the sum is an ``index_add_`` into ``N`` slots: the shapes are ``N``, whatever
    the number of distinct rows."""
    first = torch.searchsorted(torch.sort(rows).values, rows)
    return torch.zeros_like(values).index_add_(0, first, values).index_select(0, first)


def touched_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows [n], grad [n, ...])``: the distinct rows a gradient touches, ascending, and their
    gradient (copies of a row summed). A dense gradient touches the rows with a non-zero entry.
    The row count ``n`` depends on the values (a read on a device): for the data-parallel gather,
    not for a step."""
    if grad.is_sparse:
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()
    rows = grad.reshape(grad.shape[0], -1).ne(0).any(1).nonzero()[:, 0]
    return rows, grad.index_select(0, rows)
