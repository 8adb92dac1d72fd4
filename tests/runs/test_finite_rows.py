"""Non-finite embeddings are refused where a run exports them (and, tests/cli/test_recommend_cmd.py,
where serving reads them): nothing half-written, one line naming the file and the row."""
import numpy as np
import pytest
import torch

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.errors import NonFiniteError
from cbns.model.build import build_model
from cbns.objective.build import build_objective
from cbns.runs.run_dir import save_run


def test_export_refuses_a_nan_row_and_writes_no_embeddings(tmp_path):
    config = TrainConfig(dim=4, sampler="inbatch", item_side="split").validate()
    data = Interactions("t", 5, 6, np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]), np.array([[0, 2]]))
    model = build_model(config, 5, 6)
    with torch.no_grad():
        model.item_tower.embedding.weight[3, 2] = float("nan")
    with pytest.raises(NonFiniteError, match=r"item_embeddings.npy: row 3 holds nan \(\d+ non-finite values in all\); "
                                             r"the trained model is not finite there; nothing was exported"):
        save_run(tmp_path, config, data, model, build_objective(config, data.item_counts()), {})
    assert not list(tmp_path.glob("*_embeddings.npy")) and not (tmp_path / "model.pt").exists()
    assert not (tmp_path / "metrics.json").exists()
