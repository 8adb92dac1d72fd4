"""Adam over the rows of embedding tables: a step costs the rows it touches, not the table.

For a table ``W [R, ...]`` whose gradient names the rows a step touched (a sparse COO gradient,
as ``nn.Embedding(sparse=True)`` and :func:`cbns.model.sparse_rows.gather_rows` give; copies of
a row summed), two semantics:

**Catch-up (the default, ``catch_up=True``): dense Adam, computed lazily.** Dense Adam moves a
row at every step, also at the steps that give it no gradient: its moments decay
(``m <- b1 m``, ``v <- b2 v``) and the momentum still moves it. With a zero gradient those
steps have a closed form: ``k`` steps after the row's last gradient (moments ``m0``, ``v0``),
step ``s`` moves it by

    - a_s * rho^k * m0 / sqrt(v0),    a_s = lr_s * sqrt(1 - b2^s) / (1 - b1^s),  rho = b1 / sqrt(b2)

So each table keeps the coefficient ``a_s`` of every step (8 bytes a step) and each row the step
it is current at; when a row is touched again (or :meth:`RowAdam.settle` brings every row to the
current step, before the tables are read whole) the steps it missed are applied at once and its
moments decayed, then the step's own update is made as Adam makes it. The result is dense Adam's
up to float rounding, except for ``eps`` in the missed steps (left out of their denominators:
``sqrt(v)`` dwarfs it unless a row's momentum has long died) and for momentum older than ``K``
steps (``rho^K < 1e-12``, dropped). Weight decay acts on the touched rows only. Requires
``rho < 1`` (``b1 < sqrt(b2)``, true of Adam's defaults), so that the momentum dies.

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

``lr`` is the group's current value, so a learning-rate schedule applies as it does to Adam. A
dense gradient (a table used through ``W[ids]`` by a custom tower) is taken row by row too: the
rows whose gradient has a non-zero entry are the touched ones.
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

#: Missed steps whose momentum is still applied: ``rho^k`` below this is dropped.
NEGLIGIBLE = 1e-12
#: State kept in its own dtype through a checkpoint (step counts, float64 coefficients).
EXACT_STATE = ("last_step", "row_steps", "coef")


class RowAdam(Optimizer):
    """Row-wise Adam (see the module docstring) for tables indexed along dim 0.

    Args:
        params: the tables (any shape ``[R, ...]``, a 1-d ``[R]`` item bias included).
        lr, betas, eps: as for ``torch.optim.Adam``.
        weight_decay: L2 added to the gradient of the touched rows (Adam's ``weight_decay``,
            on those rows only).
        catch_up: dense Adam's trajectory computed lazily (True), or lazy moments (False).

    State per table: ``exp_avg`` and ``exp_avg_sq`` (shaped like the table); with ``catch_up``
    ``step`` (the table's step count), ``last_step`` (``[R]`` int64, the step each row is current
    at) and ``coef`` (float64, ``a_s`` of every step so far); without it ``row_steps`` (``[R]``
    int64, each row's update count). All in :meth:`state_dict`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, catch_up: bool = True):
        self.catch_up = catch_up
        if catch_up and not betas[0] < math.sqrt(betas[1]):
            raise ValueError(f"catch-up needs betas[0] < sqrt(betas[1]) (a dying momentum), got {betas}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0 or weight_decay < 0:
            raise ValueError(f"eps must be > 0 and weight_decay >= 0, got {eps} and {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``Optimizer.load_state_dict``, which casts every floating state tensor to its
        parameter's dtype; the step counts and the float64 coefficients are put back as saved."""
        exact = {index: {k: v.clone() for k, v in saved.items() if k in EXACT_STATE}
                 for index, saved in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        for index, saved in exact.items():
            for key, value in saved.items():
                self.state[params[int(index)]][key] = value if key == "coef" else value.to(params[int(index)].device)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        if self.catch_up:
            self._update_catch_up(p, group)
            return
        rows, grad = touched_rows(p.grad)
        if not len(rows):
            return
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["row_steps"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
        beta1, beta2 = group["betas"]
        weights = p.index_select(0, rows)
        if group["weight_decay"]:
            grad = grad.add(weights, alpha=group["weight_decay"])
        count = state["row_steps"].index_select(0, rows).add_(1)
        state["row_steps"].index_copy_(0, rows, count)
        m = state["exp_avg"].index_select(0, rows).lerp_(grad, 1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        shape = (-1,) + (1,) * (p.dim() - 1)
        power = count.to(p.dtype).view(shape)
        correction1 = 1 - torch.pow(beta1, power)
        correction2 = 1 - torch.pow(beta2, power)
        denom = (v / correction2).sqrt_().add_(group["eps"])
        p.index_copy_(0, rows, weights.addcdiv_(m, denom * correction1, value=-group["lr"]))


    def _update_catch_up(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["last_step"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
            state["step"] = torch.zeros((), dtype=torch.long)
            state["coef"] = torch.zeros(1024, dtype=torch.float64)  # coef[s - 1] = a_s; doubles when full
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = int(state["step"])
        correction1, correction2 = 1 - beta1 ** t, 1 - beta2 ** t
        if t > len(state["coef"]):
            state["coef"] = torch.cat([state["coef"], torch.zeros_like(state["coef"])])
        state["coef"][t - 1] = group["lr"] * math.sqrt(correction2) / correction1
        rows, grad = touched_rows(p.grad)
        if not len(rows):
            return
        weights = p.index_select(0, rows)
        m = state["exp_avg"].index_select(0, rows)
        v = state["exp_avg_sq"].index_select(0, rows)
        self._catch_up(weights, m, v, state["last_step"].index_select(0, rows), t - 1, state["coef"], group)
        if group["weight_decay"]:
            grad = grad.add(weights, alpha=group["weight_decay"])
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v / correction2).sqrt_().add_(group["eps"])
        weights.addcdiv_(m, denom, value=-group["lr"] / correction1)
        p.index_copy_(0, rows, weights)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        state["last_step"].index_fill_(0, rows, t)

    @staticmethod
    def _catch_up(weights, m, v, last: torch.Tensor, now: int, coef: torch.Tensor, group: dict) -> None:
        """In place, for rows current at step ``last [n]``: dense Adam's zero-gradient steps
        ``last + 1 .. now`` (the momentum's moves of the module docstring), then the moments
        decayed by as many steps."""
        beta1, beta2 = group["betas"]
        rho = beta1 / math.sqrt(beta2)
        window = max(1, math.ceil(math.log(NEGLIGIBLE) / math.log(rho))) if rho > 0 else 1
        gap = (now - last).clamp_(min=0).cpu()
        if not bool(gap.any()):
            return
        moves = torch.zeros(len(gap), dtype=torch.float64)  # rows with no missed step keep 0
        near = (gap > 0) & (gap <= window)
        if bool(near.any()):
            # sum_{k=1..g} a_{now-g+k} rho^k = rho^g * H[g], H[g] = sum_{j<g} a_{now-j} rho^-j: one
            # cumulative sum over the newest coefficients serves every row (rho^-window ~ 1e12, so
            # float64 holds it)
            depth = min(window, now)
            j = torch.arange(depth, dtype=torch.float64)
            newest = coef[:now].flip(0)[:depth]  # coef[s - 1] = a_s: a_now, a_(now-1), ...
            prefix = torch.cat([coef.new_zeros(1), torch.cumsum(newest * torch.pow(rho, -j), 0)])
            g = gap[near]
            moves[near] = torch.pow(rho, g.double()) * prefix[g]
        far = (gap > window).nonzero()[:, 0]
        if len(far):  # the first `window` missed steps of a row long untouched, gathered one by one
            k = torch.arange(1, window + 1)
            steps = last.cpu()[far][:, None] + k[None, :]  # [n, K] 1-based like coef's count
            a = coef[(steps - 1).clamp_(max=max(now - 1, 0))]
            moves[far] = (a * torch.pow(rho, k.double())[None, :]).sum(1)
        shape = (-1,) + (1,) * (weights.dim() - 1)
        scale = torch.where(v > 0, m / v.sqrt(), torch.zeros_like(m))
        weights.sub_(moves.to(weights.device, weights.dtype).view(shape) * scale)
        decay = gap.to(weights.device, weights.dtype).view(shape)
        m.mul_(torch.pow(beta1, decay))
        v.mul_(torch.pow(beta2, decay))

    @torch.no_grad()
    def settle(self, block: int = 1 << 14) -> None:
        """Bring every row to the current step (catch-up mode; a no-op otherwise): the steps each
        row missed since its last update, applied as dense Adam applies them. O(rows); called
        before the tables are read whole (evaluation, export)."""
        if not self.catch_up:
            return
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                t = int(state["step"])
                for s in range(0, p.shape[0], block):
                    rows = slice(s, min(s + block, p.shape[0]))
                    self._catch_up(p.data[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows],
                                   state["last_step"][rows], t, state["coef"], group)
                    state["last_step"][rows] = t


def touched_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows [n], grad [n, ...])``: the distinct rows a gradient touches, ascending, and their
    gradient (copies of a row summed). A dense gradient touches the rows with a non-zero entry."""
    if grad.is_sparse:
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()
    rows = grad.reshape(grad.shape[0], -1).ne(0).any(1).nonzero()[:, 0]
    return rows, grad.index_select(0, rows)
