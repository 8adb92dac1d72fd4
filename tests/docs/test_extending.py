"""docs/extending.md: its sampler and tower examples, run exactly as written, train a real slice."""
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from cbns.registry import ITEM_TOWERS, SAMPLERS, USER_TOWERS

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def python_blocks() -> list[str]:
    """The page's top-level ```python blocks (the indented field snippet is not a program)."""
    return [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if not b.startswith(" ")]


@pytest.fixture
def plugins():
    """The page's two modules, imported as a user would; unregistered afterwards."""
    modules = []
    for k, code in enumerate(python_blocks()[:2]):
        module = types.ModuleType(f"extending_example_{k}")
        exec(compile(code, f"{DOC}:block{k}", "exec"), module.__dict__)
        modules.append(module)
    yield modules
    SAMPLERS.remove("popmix")
    USER_TOWERS.remove("id-mlp")
    ITEM_TOWERS.remove("id-mlp")


def test_the_page_has_the_three_programs():
    assert len(python_blocks()) == 3


def test_registered_names_are_options_and_flags(plugins):
    from cbns.cli import build_parser
    from cbns.config import TrainConfig

    assert "popmix" in SAMPLERS.names() and "id-mlp" in USER_TOWERS.names() and "id-mlp" in ITEM_TOWERS.names()
    TrainConfig(sampler="popmix", user_tower="id-mlp", item_tower="id-mlp").validate()
    args = build_parser().parse_args(["train", "--sampler", "popmix", "--user-tower", "id-mlp"])
    assert args.sampler == "popmix" and args.user_tower == "id-mlp"


def test_the_sampler_draws_from_count_to_the_alpha(plugins):
    """Its extra negatives follow count^alpha (the empirical frequencies of 20,000 draws against the
    stated distribution), each with its own log q."""
    from cbns.config import TrainConfig
    from cbns.negatives import StepBatch
    from cbns.objective.sampled_objective import SampledSoftmaxObjective

    spec = SAMPLERS.get("popmix")
    counts = np.array([1, 3, 9, 27, 0])
    config = types.SimpleNamespace(num_negatives=20000, popularity_alpha=0.5, seed=0)
    ids = torch.tensor([0, 1])
    emb = torch.zeros(2, 3)
    step = StepBatch(emb, ids, torch.zeros(2), encode_items=lambda i: torch.zeros(len(i), 3))
    batch, drawn = [c for source in spec.sources(config, counts, 1) for c in source.negatives(step)]
    assert batch.holds_positives and not drawn.holds_positives
    want = np.maximum(counts, 1) ** 0.5
    want = want / want.sum()
    seen = np.bincount(drawn.ids.numpy(), minlength=5) / 20000
    assert np.abs(seen - want).max() < 0.01
    np.testing.assert_allclose(drawn.logq.numpy(), np.log(want[drawn.ids.numpy()]), rtol=1e-5)
    assert spec.negatives_per_row(256, types.SimpleNamespace(num_negatives=64)) == 255 + 64
    config = TrainConfig(sampler="popmix", num_negatives=4, item_side="split")
    assert type(spec.build(config, counts)) is SampledSoftmaxObjective


def test_the_usage_block_trains_a_run(plugins, tmp_path, gowalla_slice):
    namespace = {"DATA": str(gowalla_slice), "OUT": str(tmp_path / "run")}
    exec(compile(python_blocks()[2], f"{DOC}:usage", "exec"), namespace)
    result = namespace["result"]
    assert 0.0 <= result.test["recall@20"] <= 1.0 and result.epochs_run == 2
    assert (tmp_path / "run" / "metrics.json").is_file()
    # the towers really are the example's: an id table feeding an MLP on both sides
    from cbns.runs.model_file import read_model_file

    state = read_model_file(tmp_path / "run")["model"]
    assert any(k.startswith("user_tower.mlp.") for k in state) and any(k.startswith("item_tower.mlp.") for k in state)
