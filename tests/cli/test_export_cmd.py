"""``cbns export RUN --to DIR``: the bundle, its summary line, and each refusal in one line."""
import json

import numpy as np
import pytest
from conftest import write_tiny_lightgcn

from cbns.cli import main


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory):
    from cbns.api import train
    from cbns.config import TrainConfig

    root = write_tiny_lightgcn(tmp_path_factory.mktemp("export-cli"), seed=4)
    train(TrainConfig(data=str(root), user_tower="pooled", dim=4, hidden_dim=6, max_history=4, batch_size=32,
                      epochs=1, threads=1), root / "run", progress=False, verbose=False)
    return root / "run"


def test_export_writes_a_bundle_that_answers_as_recommend(capsys, pooled_run, tmp_path):
    out = tmp_path / "bundle"
    assert main(["export", str(pooled_run), "--to", str(out), "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("exported 40 users x 30 items (exact scoring; pooled user tower as ONNX, max abs error ")
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"max abs error {manifest['onnx_check']['max_abs_error']:.2g} " in line
    assert manifest["onnx_check"]["max_abs_error"] <= 1e-5

    assert main(["recommend", str(pooled_run), "--user", "3", "--user", "11", "-k", "7", "--exact",
                 "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    from cbns.serve.bundle import load_bundle

    assert load_bundle(out).recommend([3, 11], k=7).to_json("user") == expected


def test_export_refuses_an_occupied_target_in_one_line(capsys, tiny_run, tmp_path):
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_run), "--to", str(out)]) == 0
    assert "history queries by fold-in" in capsys.readouterr().out
    before = (out / "manifest.json").read_bytes()
    assert main(["export", str(tiny_run), "--to", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"cbns: error: --to {out}: holds a bundle already; choose another --to, or replace it with --overwrite\n"
    assert main(["export", str(tiny_run), "--to", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert json.loads((out / "manifest.json").read_bytes())["files"] == json.loads(before)["files"]
    assert main(["export", str(tiny_run), "--to", str(tiny_run), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run directory" in err
    assert main(["export", str(tmp_path / "nowhere"), "--to", str(tmp_path / "b2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory" in err and not (tmp_path / "b2").exists()
    np.testing.assert_array_equal(np.load(out / "item_embeddings.npy"), np.load(tiny_run / "item_embeddings.npy"))
