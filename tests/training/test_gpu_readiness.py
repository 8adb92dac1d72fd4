"""benchmarks/gpu_readiness.py on tiny shapes: it prints one JSON line with an entry per
configuration, and no configuration, sparse or dense updates, dispatches an op that would make a
GPU wait."""
import importlib.util
import json
from pathlib import Path

import torch

from cbns.training.dispatch_count import DispatchCounter

_SPEC = importlib.util.spec_from_file_location(
    "gpu_readiness", Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_readiness.py")
readiness = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(readiness)


def test_readiness_prints_every_configuration_and_no_step_reads_the_device(capsys):
    assert readiness.main(["--tiny", "--steps", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    configs = result["configs"]
    assert set(configs) == set(readiness.CONFIGS)
    for name, entry in configs.items():
        assert entry["ops_per_step"] > 0 and entry["launches_per_step"] <= entry["ops_per_step"]
        assert entry["syncs_per_step"] == 0, (name, entry["sync_kinds"])
    assert {entry["sparse_updates"] for entry in configs.values()} == {True, False}


def test_the_counter_sees_each_kind_of_read():
    """The reads it must count, each made once on the CPU (where none of them waits)."""
    x = torch.tensor([0.0, 1.0, 2.0])
    ids, repeats = torch.tensor([0, 2]), torch.tensor([1, 2])
    with DispatchCounter() as counter:
        x.sum().item()                                   # _local_scalar_dense
        x.nonzero()                                      # a data-dependent size
        x[x > 0]                                         # a boolean-mask index
        torch.repeat_interleave(ids, repeats)             # no output_size
        torch.tensor(3.0)                                # a tensor from host memory
        torch.sparse_coo_tensor(ids[None], x[:2], (3,), check_invariants=False).coalesce()  # distinct rows
    assert counter.reads == 6, counter.read_kinds
    with DispatchCounter() as quiet:
        x[ids]                                           # an index by positions: no read
        torch.repeat_interleave(ids, repeats, output_size=3)
        x.masked_fill(x > 0, 0.0)
    assert quiet.reads == 0, quiet.read_kinds
