"""A checkpoint written on one kind of device resumes on another: a GPU run's checkpoint (its
tensors tagged as CUDA storages, its drawing sources' CUDA generator states, the CUDA RNG state)
continues with ``--device cpu`` on a host without CUDA, reproducibly; and where it cannot (the saved
device asked for on a host without it) the error is one line naming the option."""
import shutil

import numpy as np
import pytest
import torch

from cbns.api import train
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.errors import CbnsError
from cbns.negatives.drawn_source import continued_generator
from cbns.negatives.uniform import UniformSource
from cbns.runs.checkpoint import LATEST, peek, read_checkpoint, write_checkpoint
from cbns.runs.checksummed import read_payload
from cbns.training.callbacks.base import Callback

#: A CUDA generator's state as ``torch.cuda.get_rng_state`` / ``Generator.get_state`` return it:
#: the Philox seed and offset, two little-endian 64-bit integers (16 bytes; a CPU state is 5056).
CUDA_STATE = torch.tensor(np.array([1234, 4096], dtype="<u8").view(np.uint8))

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks resuming on a host without CUDA")


class Stop(Callback):
    class Boom(Exception):
        pass

    def on_step_end(self, trainer):
        if trainer.global_step == 12:
            raise Stop.Boom()


def as_written_on_cuda(run, monkeypatch):
    """Rewrite the latest checkpoint of ``run`` as a CUDA run writes it: weights, optimizer moments,
    objective buffers and best weights stored as ``cuda:0`` storages; each drawing source's generator
    a CUDA one; the CUDA RNG state saved; the configuration's device ``cuda``. Returns the payload
    before the rewrite."""
    path = run / LATEST
    header, payload = peek(path), read_checkpoint(path)
    ptrs = {t.untyped_storage().data_ptr() for t in _device_tensors(payload)}
    assert ptrs
    sources = [k for k, v in payload["objective"].items() if k.endswith("_extra_state")]
    assert sources, "the sampler has a drawing source"
    gpu = {**payload, "objective": dict(payload["objective"]), "config": {**payload["config"], "device": "cuda"},
           "cuda_rng": CUDA_STATE.clone()}
    for key in sources:
        gpu["objective"][key] = {"generator": CUDA_STATE.clone(), "device": "cuda"}

    def cuda_tag(storage):  # before the CPU tagger: the tensors a GPU run holds on the GPU say so
        return "cuda:0" if storage.data_ptr() in ptrs else None

    registry = [(0, cuda_tag, None), *torch.serialization._package_registry]
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "_package_registry", registry)
        path.unlink()
        write_checkpoint(run, gpu, {k: v for k, v in header.items() if k not in ("format", "payload_bytes", "sha256")})
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("device: cpu", "device: cuda"))
    return payload


def _device_tensors(payload):
    """The tensors a GPU run holds on the GPU: weights, objective buffers, optimizer moments (its
    0-dim step counts stay on the CPU), the best weights so far."""
    yield from payload["model"].values()
    yield from (v for v in payload["objective"].values() if torch.is_tensor(v))
    yield from (t for t in _tensors(payload["optimizer"]) if t.dim() > 0)
    yield from _tensors(payload["fit"].get("best_state") or {})


def _tensors(tree):
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _tensors(value)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["uniform", "popularity", "mns"])
def test_a_gpu_checkpoint_resumes_on_the_cpu(tmp_path, gowalla_slice, sampler, monkeypatch, capsys):
    config = TrainConfig(data=str(gowalla_slice), sampler=sampler, dim=8, batch_size=512, epochs=1, lr=0.02,
                         num_negatives=64, threads=1, checkpoint_every=10, device="cpu")
    run = tmp_path / "run"
    with pytest.raises(Stop.Boom):
        train(config, run, progress=False, verbose=False, callbacks=[Stop()])
    assert "device: cpu" in (run / "config.yaml").read_text()
    as_written_on_cuda(run, monkeypatch)
    # the file really is a GPU one: loading it as it is needs CUDA
    with pytest.raises(CbnsError, match="RuntimeError"):
        read_payload(run / LATEST, map_location=None)
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)

    # the saved device is named on a host without it: one line naming the option
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cbns: error: --device cuda: CUDA is not available here")

    for out in (run, twin):
        assert main(["train", "--resume", str(out), "--device", "cpu", "--no-progress"]) == 0
    capsys.readouterr()
    # the same GPU checkpoint continued on the CPU twice: the same run
    for name in ("user_embeddings.npy", "item_embeddings.npy"):
        a, b = np.load(run / name), np.load(twin / name)
        assert np.isfinite(a).all() and np.array_equal(a, b), name


def test_a_generator_changing_kind_continues_from_its_state():
    """The continuation is a function of the saved state: equal states, equal draws; the CPU source
    restores a CUDA state without building a CUDA generator; a CPU state restores exactly."""
    probs = torch.full((50,), 1 / 50)
    a, b = UniformSource(50, 8, seed=3), UniformSource(50, 8, seed=3)
    a.set_extra_state({"generator": CUDA_STATE, "device": "cuda"})
    b.set_extra_state({"generator": CUDA_STATE.clone(), "device": "cuda"})
    assert a.generator.device.type == "cpu"
    assert torch.equal(a.draw(probs, 100), b.draw(probs, 100))
    other = torch.tensor(np.array([1234, 4097], dtype="<u8").view(np.uint8))
    c = UniformSource(50, 8, seed=3)
    c.set_extra_state({"generator": other, "device": "cuda"})
    assert not torch.equal(c.draw(probs, 100), UniformSource(50, 8, seed=3).draw(probs, 100))
    assert not torch.equal(continued_generator(other, torch.device("cuda"), torch.device("cpu")).get_state(),
                           continued_generator(CUDA_STATE, torch.device("cuda"), torch.device("cpu")).get_state())
    # same kind: the state is taken as it is, the draws continue exactly
    d, e = UniformSource(50, 8, seed=5), UniformSource(50, 8, seed=9)
    d.draw(probs, 7)
    e.set_extra_state(d.get_extra_state())
    assert torch.equal(d.draw(probs, 100), e.draw(probs, 100))
