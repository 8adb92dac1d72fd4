"""Objective states saved in the layout where a sampler module held the drawing sources' state
(``sampler.log_q``, ``sampler.step``, ``sampler.uniform`` / ``sampler.probs``,
``sampler._extra_state``, ``sampler.frequency.*``) load into today's objective and continue as
the saving run would have; the CBNS loss keeps its keys unchanged."""
import numpy as np
import pytest
import torch

from cbns.config import TrainConfig
from cbns.objective.build import build_objective
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss

D, NUM_ITEMS = 4, 12


def steps(seed, n, batch=5):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, D, generator=g), torch.randn(batch, D, generator=g),
             torch.randint(0, NUM_ITEMS, (batch,), generator=g)) for _ in range(n)]


def table(ids):
    return torch.sin(ids[:, None].float() + torch.arange(D).float())


def run(objective, batches):
    return [objective(u, v, ids, encode_items=table) for u, v, ids in batches]


def old_layout(objective, drawn: str, buffer: str) -> dict:
    """The state of ``objective`` as the sampler layout stored it, written out key by key."""
    source = getattr(objective, drawn)
    old = {"sampler.step": objective.step.clone(), f"sampler.{buffer}": getattr(source, buffer).clone(),
           "sampler._extra_state": {"generator": source.generator.get_state(), "device": "cpu"}}
    if objective.frequency is None:
        old["sampler.log_q"] = objective.log_q.clone()
    else:  # the table the sampler kept, stale copies of the estimate: nothing reads it
        old["sampler.log_q"] = torch.full((NUM_ITEMS,), -np.log(NUM_ITEMS), dtype=torch.float32)
        old.update({f"sampler.frequency.{k}": v.clone() for k, v in objective.frequency.state_dict().items()})
    return old


@pytest.mark.parametrize("sampler,drawn,buffer,frequency", [
    ("uniform", "uniform", "uniform", "static"), ("mns", "uniform", "uniform", "static"),
    ("popularity", "popularity", "probs", "static"), ("mns", "uniform", "uniform", "streaming"),
])
def test_an_old_layout_loads_and_continues_identically(sampler, drawn, buffer, frequency):
    counts = np.arange(1, NUM_ITEMS + 1)
    config = TrainConfig(sampler=sampler, num_negatives=6, dim=D, item_side="split", item_frequency=frequency,
                         frequency_slots=64, seed=3)
    batches = steps(0, 6)
    a = build_objective(config, counts)
    run(a, batches[:3])
    b = build_objective(TrainConfig(**{**config.to_dict(), "seed": 40}), counts)  # another generator
    state = old_layout(a, drawn, buffer)
    assert all(k.startswith("sampler.") for k in state)
    b.load_state_dict(state)  # strict: every old key found a home, every new key was filled
    assert b._steps == 3 and int(b.step) == 3
    for got, want in zip(run(b, batches[3:]), run(a, batches[3:])):
        assert torch.equal(got, want)
    assert torch.equal(getattr(a, drawn).generator.get_state(), getattr(b, drawn).generator.get_state())


def test_an_unknown_old_key_is_still_reported():
    objective = build_objective(TrainConfig(sampler="uniform", num_negatives=2, dim=D, item_side="split"),
                                np.ones(NUM_ITEMS))
    state = {**old_layout(objective, "uniform", "uniform"), "sampler.nonsense": torch.zeros(1)}
    with pytest.raises(RuntimeError, match="sampler.nonsense"):
        objective.load_state_dict(state)


def test_cbns_keys_are_the_loss_modules_own():
    static = CrossBatchSoftmaxLoss(D, 8, item_counts=np.ones(NUM_ITEMS))
    assert set(static.state_dict()) == {"step", "log_q", "bank.emb", "bank.ids", "bank.logq", "bank.ptr",
                                        "bank.filled"}
    streaming = CrossBatchSoftmaxLoss(D, 8, frequency_slots=16)
    assert set(streaming.state_dict()) == {"step", "bank.emb", "bank.ids", "bank.logq", "bank.ptr", "bank.filled",
                                           "frequency.last_seen", "frequency.gap", "frequency.step"}
