"""``training.compile``: the objective traces as one graph (no graph break inside it), a compiled
dense step gives the eager step's loss, and sparse updates are refused with a one-line error."""
import importlib.util
from pathlib import Path

import pytest
import torch

from cbns.config import TrainConfig
from cbns.errors import CbnsError

_SPEC = importlib.util.spec_from_file_location(
    "gpu_readiness", Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_readiness.py")
readiness = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(readiness)


@pytest.fixture(scope="module")
def data():
    return readiness.tiny_data()


@pytest.mark.parametrize("name", ["cbns-stale-dense", "cbns-refresh-dense", "cbns-stale-bf16-dense", "inbatch-dense",
                                  "full-dense"])
def test_the_objective_traces_without_a_graph_break(name, data):
    trainer, _ = readiness.build({**readiness.TINY, **readiness.CONFIGS[name]}, None, data)
    readiness.run_steps(trainer, 4)                                  # the bank is full and scored
    index = trainer.epoch_batches()[0]
    batch = trainer.train_pairs[index]
    users, items = batch[:, 0], batch[:, 1]
    user_emb, item_emb, bias = trainer.encoder(users, items, trainer.context_of(index))

    def score(u, v, ids):
        return trainer.objective(u, v, ids, item_bias=bias, encode_items=trainer._encode_items)
    explained = torch._dynamo.explain(score)(user_emb, item_emb, items)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1


def test_a_compiled_step_gives_the_eager_loss(data):
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        trainer, _ = readiness.build({**readiness.TINY, "sparse_updates": False, "compile": compiled,
                                      "lr_schedule": "constant"}, None, data)
        batches = trainer.epoch_batches()
        losses.append([float(trainer.step(trainer.train_pairs[b], None, global_rows=len(b))) for b in batches[:4]])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-5)


def test_compile_with_sparse_updates_is_refused_in_one_line():
    with pytest.raises(CbnsError, match=r"compile.*--sparse-updates false") as info:
        TrainConfig(compile=True).validate()
    assert "\n" not in str(info.value)
