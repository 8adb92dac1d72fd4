"""What each ``--sampler`` name builds, and the one list of sampler options."""
import subprocess
import sys

import numpy as np
import pytest

from cbns.config import TrainConfig
from cbns.negatives import InBatchSource, MemoryBank, PopularitySource, UniformSource
from cbns.objective.build import build_objective
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss
from cbns.objective.full_softmax_loss import FullSoftmaxLoss
from cbns.objective.sampled_objective import SampledSoftmaxObjective
from cbns.registry import SAMPLERS
from cbns.study.cells import sampler_options


def test_the_built_in_names_in_help_order():
    assert SAMPLERS.names()[:6] == ("inbatch", "uniform", "popularity", "mns", "cbns", "full")
    assert SAMPLERS.choices()[0] == "auto" and SAMPLERS.get("auto") is SAMPLERS.get("cbns")


@pytest.mark.parametrize("name,kind,sources", [
    ("inbatch", CrossBatchSoftmaxLoss, [InBatchSource, MemoryBank]),
    ("cbns", CrossBatchSoftmaxLoss, [InBatchSource, MemoryBank]),
    ("uniform", SampledSoftmaxObjective, [UniformSource]),
    ("popularity", SampledSoftmaxObjective, [PopularitySource]),
    ("mns", SampledSoftmaxObjective, [InBatchSource, UniformSource]),
])
def test_each_sampler_is_the_one_objective_with_its_sources(name, kind, sources):
    config = TrainConfig(sampler=name, item_side="split", memory_size=16, num_negatives=5, dim=8, seed=4)
    objective = build_objective(config, np.arange(1, 11))
    assert type(objective) is kind and [type(s) for s in objective.sources] == sources
    if MemoryBank in sources:
        assert objective.bank.size == (0 if name == "inbatch" else 16)
    for source in objective.sources:
        if hasattr(source, "seed"):
            assert source.seed == 5  # config seed + 1, as the samplers were seeded


def test_full_builds_the_exact_softmax_and_sees_every_item():
    config = TrainConfig(sampler="full", dim=8)
    assert isinstance(build_objective(config, np.ones(10)), FullSoftmaxLoss)
    assert SAMPLERS.get("full").negatives_per_row(256, config.sampler) is None and SAMPLERS.get("full").options == ()


def test_negatives_per_row():
    config = TrainConfig(memory_size=100, num_negatives=7)
    assert {n: SAMPLERS.get(n).negatives_per_row(32, config.sampler) for n in ("inbatch", "uniform", "popularity", "mns",
                                                                        "cbns")} == \
        {"inbatch": 31, "uniform": 7, "popularity": 7, "mns": 38, "cbns": 131}


def test_study_sampler_options_are_the_registered_ones():
    options = sampler_options()
    declared = {o for n in SAMPLERS.names() for o in SAMPLERS.get(n).options}
    assert set(options) == {"sampler", "item_side"} | declared
    assert set(options) >= {"sampler", "memory_size", "warmup_steps", "bank_mode", "item_side", "num_negatives",
                            "popularity_alpha"}
    assert all(o in TrainConfig.options() for o in options)


def test_the_sources_import_nothing_from_the_objective():
    code = "import sys, cbns.negatives; print([m for m in sys.modules if m.startswith('cbns.objective')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
