"""index.faiss and index.json are published as one pair: an interrupted build leaves a pair that is
refused in one line (never an AttributeError from faiss), a failed write leaves no temporary file
and the previous index as it was."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_run

from cbns.cli import main
from cbns.errors import CbnsError
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import INDEX_FILE, INDEX_META, ItemIndex
from cbns.runs import atomic
from cbns.serve.recommender import Recommender

ROOT = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """Stands for the process being killed at that point."""


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp" in p.name)


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("cbns: error: ") and "Traceback" not in err, err
    return err


def build(run: Path, *kind: str) -> int:
    return main(["index", "build", str(run), "--threads", "1", *kind])


def exact_top(run: Path, user: int, k: int) -> list[int]:
    """Brute force over the exported vectors (no seen items excluded)."""
    scores = np.load(run / "item_embeddings.npy") @ np.load(run / "user_embeddings.npy")[user]
    return np.argsort(-scores, kind="stable")[:k].tolist()


def test_a_kill_between_the_two_renames_is_refused_in_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    run = copy_run(tiny_run, tmp_path / "run")
    assert build(run, "--kind", "hnsw") == 0
    real, calls = atomic.atomic_rename, []

    def rename_then_die(src, dst, sync=True):
        calls.append(Path(dst).name)
        if len(calls) == 2:
            raise Killed
        real(src, dst, sync)

    monkeypatch.setattr(atomic, "atomic_rename", rename_then_die)
    with pytest.raises(Killed):
        build(run, "--kind", "flat")
    monkeypatch.setattr(atomic, "atomic_rename", real)
    assert calls == [INDEX_FILE, INDEX_META]  # the new flat index beside the old hnsw description
    assert json.loads((run / INDEX_META).read_text())["kind"] == "hnsw"
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "0", "--threads", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{run / INDEX_FILE}: not the index {INDEX_META} describes" in line
    assert f"rebuild it with: cbns index build {run}" in line
    with pytest.raises(CbnsError, match="not the index index.json describes"):
        Recommender.from_run(run)
    # exact scoring still serves; a rebuild repairs the pair and sweeps the killed build's leftover
    assert Recommender.from_run(run, use_index=False).recommend([0], k=5, exclude_seen=False).rows[0].tolist() == \
        exact_top(run, 0, 5)
    assert leftovers(run) != []
    assert build(run, "--kind", "flat") == 0
    assert leftovers(run) == []
    rec = Recommender.from_run(run)
    assert rec.index.spec.kind == "flat"
    assert rec.recommend([0], k=5, exclude_seen=False).rows[0].tolist() == exact_top(run, 0, 5)


def test_a_description_without_the_checksum_is_checked_against_the_index_type(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "run")
    assert build(run, "--kind", "flat") == 0
    meta = json.loads((run / INDEX_META).read_text())
    del meta["index_sha256"]  # as an older cbns wrote it; and from an hnsw build
    (run / INDEX_META).write_text(json.dumps({**meta, "kind": "hnsw", "m": 32, "ef_search": 128,
                                              "ef_construction": 80}))
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "0", "--threads", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds a IndexFlatIP, but index.json describes a 'hnsw' index" in line and "hnsw'" in line
    (run / INDEX_META).write_text(json.dumps(meta))  # the matching older description still loads
    assert Recommender.from_run(run).index.spec.kind == "flat"


@pytest.mark.parametrize("gone", [INDEX_FILE, INDEX_META])
def test_half_a_pair_is_refused(tiny_run, tmp_path, capsys, gone):
    run = copy_run(tiny_run, tmp_path / "run")
    assert build(run, "--kind", "flat") == 0
    (run / gone).unlink()
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "0", "--threads", "1"]) == 2
    assert f"{run / gone}: missing beside" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("which", [INDEX_FILE, INDEX_META])
def test_a_full_disk_leaves_the_previous_index_and_no_temporary_file(tiny_run, tmp_path, monkeypatch, capsys, which):
    run = copy_run(tiny_run, tmp_path / "run")
    assert build(run, "--kind", "hnsw") == 0
    before = {name: (run / name).read_bytes() for name in (INDEX_FILE, INDEX_META)}
    real = atomic.os.fsync

    def full(fd):
        if Path(atomic.os.readlink(f"/proc/self/fd/{fd}")).name.startswith(which + atomic.TMP_INFIX):
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", full)
    capsys.readouterr()
    assert build(run, "--kind", "flat") == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{run / which}: cannot write (No space left on device)" in line
    assert leftovers(run) == []
    assert {name: (run / name).read_bytes() for name in (INDEX_FILE, INDEX_META)} == before
    monkeypatch.setattr(atomic.os, "fsync", real)
    assert Recommender.from_run(run).index.spec.kind == "hnsw"


def test_a_file_size_limit_ends_in_one_line_and_no_temporary_file(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / (INDEX_FILE + ".tmp")).write_bytes(b"left by a build of an older cbns")
    # the limit is set once the modules are loaded, and no bytecode is written: only cbns's writes meet it
    script = ("import resource, sys, faiss, torch; from cbns.cli import main; import cbns.cli.index_cmd; "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, "index", "build", str(run), "--kind", "hnsw",
                           "--threads", "1"], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}, timeout=300)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert f"{run / INDEX_FILE}: cannot write (File too large)" in line
    assert leftovers(run) == [] and not (run / INDEX_FILE).exists() and not (run / INDEX_META).exists()


def test_saving_records_the_index_checksum_and_the_embeddings_hash(tmp_path):
    import hashlib

    items = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    ItemIndex.build(items, IndexSpec("flat")).save(tmp_path, items)
    meta = json.loads((tmp_path / INDEX_META).read_text())
    assert meta["index_sha256"] == hashlib.sha256((tmp_path / INDEX_FILE).read_bytes()).hexdigest()
    assert (meta["num_items"], meta["dim"], meta["kind"]) == (50, 6, "flat")
    loaded = ItemIndex.load(tmp_path, items)
    _, rows = loaded.search(items[:3], 4)
    assert rows[:, 0].tolist() == np.argmax(items[:3] @ items.T, axis=1).tolist()
    with pytest.raises(CbnsError, match="built from other item embeddings"):
        ItemIndex.load(tmp_path, items[::-1].copy())
