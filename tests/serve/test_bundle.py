"""``export_bundle`` and ``load_bundle``: a bundle answers what its run answers (exact scoring), its
ONNX user tower agrees with the torch tower, its files are checked, and it serves with torch
blocked from importing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_run, write_tiny_lightgcn

from cbns.errors import CbnsError

REPO = Path(__file__).resolve().parents[2]
TOWERS = ["pooled", "gru", "features", "id"]


def _users_csv(root: Path) -> Path:
    path = root / "users.csv"
    path.write_text("user,parity,band\n" + "".join(f"{u},{'odd' if u % 2 else 'even'},b{u % 3}\n" for u in range(40)))
    return path


@pytest.fixture(scope="module", params=TOWERS)
def run_and_bundle(request, tmp_path_factory):
    """A two-epoch run of each user tower on 40 users x 30 items, and its bundle."""
    from cbns.api import train
    from cbns.config import TrainConfig
    from cbns.serve.export import export_bundle

    root = write_tiny_lightgcn(tmp_path_factory.mktemp(f"{request.param}-bundle"), seed=7)
    extra = {"user_features": str(_users_csv(root))} if request.param == "features" else {}
    train(TrainConfig(data=str(root), user_tower=request.param, dim=4, hidden_dim=6, max_history=4, batch_size=32,
                      epochs=2, threads=1, **extra), root / "run", progress=False, verbose=False)
    manifest = export_bundle(root / "run", root / "bundle")
    return request.param, root / "run", root / "bundle", manifest


def attribute_names(bundle: Path) -> list[str]:
    """The attribute names the bundle's vocabulary spells (the loader may prefix the file's column names)."""
    return [col["name"] for col in json.loads((bundle / "user_features.json").read_text())["columns"]]


def random_histories(rng, count, num_items=30):
    return [rng.choice(num_items, size=rng.integers(1, 9), replace=False).tolist() for _ in range(count)]


def test_the_bundle_answers_as_its_run(run_and_bundle):
    from cbns.serve import Recommender
    from cbns.serve.bundle import load_bundle

    kind, run, bundle, manifest = run_and_bundle
    rec, served = Recommender.from_run(run, use_index=False), load_bundle(bundle)
    assert served.device is None and served.query_kinds == rec.query_kinds == set(manifest["query_kinds"])
    users = list(range(40))
    for exclude_seen in (True, False):
        ours, theirs = served.recommend(users, k=10, exclude_seen=exclude_seen), rec.recommend(users, k=10,
                                                                                            exclude_seen=exclude_seen)
        np.testing.assert_array_equal(ours.rows, theirs.rows)
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-6)
    np.testing.assert_array_equal(served.similar_items(list(range(30)), k=5).rows,
                                  rec.similar_items(list(range(30)), k=5).rows)
    rng = np.random.default_rng(0)
    if "history" in rec.query_kinds:
        histories = random_histories(rng, 25)
        ours, theirs = served.recommend_history(histories, k=10), rec.recommend_history(histories, k=10)
        np.testing.assert_array_equal(ours.rows, theirs.rows)
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)
    if "features" in rec.query_kinds:
        parity, band = attribute_names(bundle)
        rows = [{parity: rng.choice(["odd", "even"]), band: f"b{rng.integers(3)}"} for _ in range(10)] + [{}]
        ours, theirs = served.recommend_features(rows, k=10), rec.recommend_features(rows, k=10)
        np.testing.assert_array_equal(ours.rows, theirs.rows)
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)


def test_the_onnx_tower_agrees_with_the_torch_tower_within_1e5(run_and_bundle):
    from cbns.serve import Recommender
    from cbns.serve.bundle import load_bundle

    kind, run, bundle, manifest = run_and_bundle
    if kind == "id":
        assert manifest["encoder"]["kind"] == "fold_in" and manifest["onnx_check"] is None
        assert not (bundle / "user_tower.onnx").exists()
        return
    assert manifest["encoder"]["kind"] == "onnx" and 0 <= manifest["onnx_check"]["max_abs_error"] <= 1e-5
    torch_encoder, onnx_encoder = Recommender.from_run(run).user_encoder, load_bundle(bundle).user_encoder
    rng = np.random.default_rng(1)
    if kind == "features":
        parity, band = attribute_names(bundle)
        rows = [{parity: "odd"}, {band: "b2"}, {parity: "even", band: "b0"}, {}]
        ours, theirs = onnx_encoder.encode_features(rows), torch_encoder.encode_features(rows)
    else:  # lengths 1..9 around max_history 4: the cut to the newest items is the bundle's too
        histories = [np.array(h) for h in random_histories(rng, 64)]
        ours, theirs = onnx_encoder.encode_history(histories), torch_encoder.encode_history(histories)
        # a user's own history (train + validation, as the export read it) gives back the stored row
        from cbns.data.history import HistoryContext
        from cbns.data.loading import load_data
        from cbns.runs.run_dir import load_run_config

        context = HistoryContext(load_data(load_run_config(run)), max_len=100).for_users("test")
        own = [context["history"][u, :int(context["history_length"][u])].numpy() for u in range(40)]
        np.testing.assert_allclose(onnx_encoder.encode_history(own), np.load(bundle / "user_embeddings.npy"),
                                   atol=1e-5)
    assert ours.shape == theirs.shape == (len(ours), 5)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_the_manifest_lists_every_file_with_its_checksum(run_and_bundle):
    import hashlib

    kind, run, bundle, manifest = run_and_bundle
    assert json.loads((bundle / "manifest.json").read_text()) == manifest
    files = {p.name for p in bundle.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    assert {"user_embeddings.npy", "item_embeddings.npy", "seen_items.npz"} <= files
    for name, entry in manifest["files"].items():
        data = (bundle / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert set(manifest["versions"]) >= {"cbns", "torch", "onnx", "onnxruntime", "numpy"}
    np.testing.assert_array_equal(np.load(bundle / "item_embeddings.npy"), np.load(run / "item_embeddings.npy"))
    assert not [p for p in bundle.parent.iterdir() if ".cbns-" in p.name]  # no temporary directory left
    umask = os.umask(0)
    os.umask(umask)
    assert bundle.stat().st_mode & 0o777 == 0o777 & ~umask  # not the 0700 of a temporary directory


@pytest.fixture
def pooled_bundle(run_and_bundle, tmp_path):
    kind, run, bundle, manifest = run_and_bundle
    if kind != "pooled":
        pytest.skip("checked on the pooled bundle")
    return run, copy_run(bundle, tmp_path / "bundle")


def test_a_changed_or_missing_file_is_refused_in_one_line_naming_it(pooled_bundle):
    from cbns.serve.bundle import load_bundle

    run, bundle = pooled_bundle
    path = bundle / "item_embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CbnsError, match=r"item_embeddings\.npy: its checksum does not match manifest\.json") as err:
        load_bundle(bundle)
    assert "\n" not in str(err.value)
    shutil.copy(run / "item_embeddings.npy", path)
    load_bundle(bundle)
    (bundle / "user_tower.onnx").unlink()
    with pytest.raises(CbnsError, match=r"user_tower\.onnx: missing from the bundle"):
        load_bundle(bundle)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(CbnsError, match=r"manifest\.json: cannot read the manifest"):
        load_bundle(bundle)
    with pytest.raises(CbnsError, match=r"a run directory, not a bundle"):
        load_bundle(run)


def test_an_existing_bundle_is_replaced_only_with_overwrite_and_a_run_never(pooled_bundle, tmp_path):
    from cbns.serve.bundle import load_bundle
    from cbns.serve.export import export_bundle

    run, bundle = pooled_bundle
    (bundle / "left-over.txt").write_text("from before")
    with pytest.raises(CbnsError, match=r"holds a bundle already; .*overwrite=True"):
        export_bundle(run, bundle)
    assert (bundle / "left-over.txt").is_file()
    export_bundle(run, bundle, overwrite=True)
    assert not (bundle / "left-over.txt").exists()
    load_bundle(bundle)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(CbnsError, match=r"holds a run directory"):
        export_bundle(run, run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CbnsError, match=r"not a bundle"):
        export_bundle(run, other, overwrite=True)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if ".cbns-" in p.name]


def test_an_onnx_graph_beyond_the_tolerance_is_refused_and_nothing_written(pooled_bundle, tmp_path, monkeypatch):
    import cbns.serve.export as export

    run, _ = pooled_bundle
    monkeypatch.setattr(export, "MAX_ONNX_ERROR", -1.0)  # every difference, even 0, is too large
    with pytest.raises(CbnsError, match=r"the ONNX graph of the pooled user tower differs from the tower by"):
        export.export_bundle(run, tmp_path / "refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


BLOCKED = """
import importlib.abc, json, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, NoTorch())
from cbns.serve.bundle import load_bundle
rec = load_bundle(sys.argv[1])
out = {"user": rec.recommend(list(range(40)), k=5).rows.tolist(),
       "similar": rec.similar_items([0, 7], k=5).rows.tolist(),
       "index": rec.index is not None}
if "history" in rec.query_kinds:
    out["history"] = rec.recommend_history([[1, 2, 3], [5]], k=5).rows.tolist()
if "features" in rec.query_kinds:
    first = json.loads(open(sys.argv[1] + "/user_features.json").read())["columns"][0]["name"]
    out["features"] = rec.recommend_features([{first: "odd"}], k=5).rows.tolist()
out["torch"] = [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
print(json.dumps(out))
"""


def served_without_torch(bundle: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(bundle)], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_bundle_serves_with_torch_blocked(run_and_bundle, tmp_path):
    from cbns.ranking.index_spec import IndexSpec
    from cbns.ranking.item_index import ItemIndex
    from cbns.serve import Recommender
    from cbns.serve.export import export_bundle

    kind, run, bundle, _ = run_and_bundle
    if kind == "features":  # with an index: the bundle carries it and faiss searches it without torch
        run = copy_run(run, tmp_path / "run")
        items = np.load(run / "item_embeddings.npy")
        ItemIndex.build(items, IndexSpec("flat")).save(run, items)
        bundle = tmp_path / "bundle"
        export_bundle(run, bundle)
    got = served_without_torch(bundle)
    assert got["torch"] == [] and got["index"] == (kind == "features")
    rec = Recommender.from_run(run)
    assert got["user"] == rec.recommend(list(range(40)), k=5).rows.tolist()
    assert got["similar"] == rec.similar_items([0, 7], k=5).rows.tolist()
    if "history" in rec.query_kinds:
        assert got["history"] == rec.recommend_history([[1, 2, 3], [5]], k=5).rows.tolist()
    if "features" in rec.query_kinds:
        assert got["features"] == rec.recommend_features([{attribute_names(bundle)[0]: "odd"}], k=5).rows.tolist()


def test_the_serving_modules_import_without_torch():
    """The modules a bundle is served with, imported where torch cannot be (fast, no run needed)."""
    modules = ["cbns.serve", "cbns.serve.bundle", "cbns.serve.recommender", "cbns.serve.fold_in",
               "cbns.ranking.filtered_search", "cbns.ranking.numpy_topk", "cbns.ranking.item_index",
               "cbns.runs.seen_items_file", "cbns.runs.feature_vocabulary", "cbns.machine"]
    script = BLOCKED.split("from cbns.serve.bundle")[0] + "".join(f"import {m}\n" for m in modules)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
