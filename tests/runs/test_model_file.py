"""The model file: checksummed, refused when damaged, and the legacy checkpoint.pt of older runs read."""
import json

import pytest
import torch

from cbns.api import evaluate_run
from cbns.errors import CbnsError
from cbns.runs.model_file import LEGACY_MODEL_FILE, MODEL_FILE, read_model_file


@pytest.fixture
def run(tiny_run):
    """A one-epoch run on 40 random users of 30 items (conftest's ``tiny_run``; read, never modified)."""
    return tiny_run


def test_the_model_file_holds_the_weights_and_evaluates_to_the_run_metrics(run):
    payload = read_model_file(run)
    assert set(payload) == {"config", "model", "objective", "num_users", "num_items", "custom_towers"}
    assert payload["objective"]["bank.ids"].shape == (64,) and not payload["custom_towers"]
    assert payload["num_users"] == 40 and payload["num_items"] == 30
    saved = json.loads((run / "metrics.json").read_text())
    assert evaluate_run(run)["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"], abs=1e-7)


def test_flipped_bytes_in_the_model_file_are_refused(run, tmp_path):
    damaged = tmp_path / "run"
    damaged.mkdir()
    for f in run.iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    data = bytearray((damaged / MODEL_FILE).read_bytes())
    for at in (len(data) // 2, len(data) // 2 + 7, len(data) - 3):  # three bytes inside the payload
        data[at] ^= 0x5A
    (damaged / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(CbnsError, match=r"model.pt: damaged model file \(SHA-256"):
        evaluate_run(damaged)


def test_a_run_written_before_model_pt_is_read_from_checkpoint_pt(run, tmp_path):
    """Older runs saved the same payload with a plain torch.save as checkpoint.pt."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for f in run.iterdir():
        if f.name != MODEL_FILE:
            (legacy / f.name).write_bytes(f.read_bytes())
    torch.save(read_model_file(run), legacy / LEGACY_MODEL_FILE)
    assert evaluate_run(legacy) == evaluate_run(run)


def test_a_run_without_a_model_file_says_so(run, tmp_path):
    (tmp_path / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(CbnsError, match=r"no model.pt in the run directory"):
        evaluate_run(tmp_path)
