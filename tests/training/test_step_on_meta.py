"""One real training step on the ``meta`` device: the proof, without a GPU, that a step keeps every
tensor on the device and never reads it back.

``Trainer.step`` runs as ``Trainer.train_epoch`` runs it, with the model, the objective (the CBNS
bank, the unigram table, the samplers' state), the optimizer state and the batch on ``meta``,
where tensors have shapes but no values: any value read (``.item()``, ``nonzero``, a boolean-mask
index, ``repeat_interleave`` without ``output_size``) and any CPU tensor meeting a meta one fails.
A raising :class:`cbns.training.dispatch_count.DispatchCounter` also fails the step on reads that
meta would let through (a tensor made from host memory). The bank is filled by warm-up steps first,
so the counted step scores against it.

Two stand-ins, both outside cbns: the trainer is told its device is ``meta`` (``--device`` accepts
real devices only), and torch's allow-list of devices for fused Adam, which omits ``meta`` though
the fused kernel has a meta implementation, admits it. Under ``bf16`` the CPU's autocast stands in
for meta's (which does not exist), so the towers stay float32 there; the fused softmax's bfloat16
products run as on a GPU.

The sparse-update configurations (row-wise Adam for the tables, the default) run the same way: the
optimizer's bookkeeping stays on the device too (:mod:`cbns.training.row_adam`).
"""
import importlib.util
from pathlib import Path

import pytest
import torch
from torch.optim import adam as adam_module

import cbns.training.trainer as trainer_module
from cbns.training.dispatch_count import DispatchCounter, HostReadError

_SPEC = importlib.util.spec_from_file_location(
    "gpu_readiness", Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_readiness.py")
readiness = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(readiness)

META = torch.device("meta")
DENSE = [name for name in readiness.CONFIGS if name.endswith("-dense")]
SPARSE = [name for name in readiness.CONFIGS if not name.endswith("-dense")]


@pytest.fixture
def on_meta(monkeypatch):
    monkeypatch.setattr(trainer_module, "resolve_device", lambda spec: META)
    allowed = adam_module._device_dtype_check_for_fused

    def admit_meta(p, cuda_unsupported=False):
        if p.device.type != "meta":
            allowed(p, cuda_unsupported)
    monkeypatch.setattr(adam_module, "_device_dtype_check_for_fused", admit_meta)


@pytest.fixture(scope="module")
def data():
    return readiness.tiny_data()


def one_step(trainer, counted: bool):
    index = trainer.epoch_batches()[0]
    batch = trainer.train_pairs[index.to(trainer.device)]          # as train_epoch makes it
    context = trainer.context_of(index)
    if not counted:
        return trainer.step(batch, context, global_rows=len(index))
    with DispatchCounter(raise_on_read=True) as counter:
        loss = trainer.step(batch, context, global_rows=len(index))
    assert counter.reads == 0 and counter.ops > 0
    return loss


def run_on_meta(name, data):
    trainer, _ = readiness.build({**readiness.TINY, **readiness.CONFIGS[name]}, None, data)
    held = [*trainer.model.parameters(), *trainer.model.buffers(), *trainer.objective.buffers(), trainer.train_pairs]
    assert all(t.device == META for t in held)
    cfg = trainer.config.sampler
    for _ in range(cfg.memory_size // cfg.batch_size + cfg.warmup_steps + 1 if cfg.name == "cbns" else 1):
        one_step(trainer, counted=False)
    if cfg.name == "cbns":
        assert trainer.objective.bank_active                        # the counted step scores the bank
    loss = one_step(trainer, counted=True)
    assert loss.device == META and loss.shape == ()
    state = [t for opt in getattr(trainer.optimizer, "parts", {"": trainer.optimizer}).values()
             for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    assert state and all(t.device == META for t in state)           # Adam's moments and step counters
    return trainer


@pytest.mark.parametrize("name", DENSE)
def test_one_real_step_stays_on_the_device_and_never_reads_it(name, data, on_meta):
    run_on_meta(name, data)


@pytest.mark.parametrize("name", SPARSE)
def test_one_real_step_with_sparse_updates_stays_on_the_device(name, data, on_meta):
    run_on_meta(name, data)


def test_the_meta_step_fails_on_a_cpu_tensor_or_a_read(data, on_meta, monkeypatch):
    """The harness can fail: a CPU tensor in the objective, or a value read, stops the step."""
    trainer, _ = readiness.build({**readiness.TINY, **readiness.CONFIGS["inbatch-dense"]}, None, data)
    forward = type(trainer.objective).forward
    monkeypatch.setattr(type(trainer.objective), "forward",
                        lambda self, *a, **k: forward(self, *a, **k) + torch.zeros(1))
    with pytest.raises((RuntimeError, HostReadError)):
        one_step(trainer, counted=True)
    monkeypatch.setattr(type(trainer.objective), "forward",
                        lambda self, *a, **k: forward(self, *a, **k) * float(bool(torch.ones((), device=META))))
    with pytest.raises((RuntimeError, NotImplementedError, HostReadError)):
        one_step(trainer, counted=True)
