"""A finished run records the data it was trained on and the embeddings it exported
(``source.json``): ``cbns evaluate`` refuses data edited since, naming the file; ``cbns recommend``
says so and still serves the run as trained; embedding files of another run are refused."""
import hashlib
import json
import os

import numpy as np
import pytest
from conftest import copy_run

from cbns.api import evaluate_run
from cbns.cli import main
from cbns.errors import CbnsError
from cbns.runs.seen_items_file import SEEN_FILE
from cbns.runs.source_record import SOURCE_FILE
from cbns.serve.recommender import Recommender


def write_tiny_data(root, seed=2):
    """40 users x 30 items, 6 train items and 1 test item each (LightGCN lines)."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(30, size=7, replace=False) for _ in range(40)]
    (root / "train.txt").write_text("".join(f"{u} " + " ".join(map(str, p[:6])) + "\n" for u, p in enumerate(picks)))
    (root / "test.txt").write_text("".join(f"{u} {p[6]}\n" for u, p in enumerate(picks)))
    return picks


def train_tiny(data_dir, out, seed=0):
    from cbns.api import train
    from cbns.config import TrainConfig

    train(TrainConfig(data=str(data_dir), sampler="inbatch", dim=4, batch_size=32, epochs=1, threads=1, seed=seed),
          out, progress=False, verbose=False)
    return out


@pytest.fixture
def fresh(tmp_path):
    """A run of its own (its data gets edited): ``(data directory, run directory, picks)``."""
    data = tmp_path / "data"
    data.mkdir()
    picks = write_tiny_data(data)
    return data, train_tiny(data, tmp_path / "run"), picks


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert lines and lines[-1].startswith("cbns: error: ") and "Traceback" not in err, err
    return lines[-1]


def test_the_run_records_its_data_files_pairs_and_embeddings(fresh):
    data, run, _ = fresh
    record = json.loads((run / SOURCE_FILE).read_text())
    for name in ("train.txt", "test.txt"):
        raw = (data / name).read_bytes()
        assert record["files"]["data"][name]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert record["files"]["data"][name]["size"] == len(raw)
    # 40 users x 6 train items, 10 % of them carved out for validation by default, 40 test pairs
    fp = record["data"]
    assert (fp["num_users"], fp["num_items"], fp["train"] + fp["valid"], fp["test"]) == (40, 30, 240, 40)
    assert set(record["embeddings"]) == {"user_embeddings.npy", "item_embeddings.npy"}


def test_evaluate_names_a_data_file_edited_after_training(fresh, capsys):
    data, run, picks = fresh
    saved = json.loads((run / "metrics.json").read_text())
    assert evaluate_run(run, device="cpu")["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"], abs=1e-7)
    original = (data / "test.txt").read_text()
    unseen = next(i for i in range(30) if i not in picks[0])  # user 0's new test item: no duplicate pair
    (data / "test.txt").write_text(original.replace(f"0 {picks[0][6]}\n", f"0 {unseen}\n", 1))
    with pytest.raises(CbnsError, match=rf"^{data / 'test.txt'}: changed since the run .* was trained"):
        evaluate_run(run, device="cpu")
    assert main(["evaluate", str(run), "--threads", "1", "--device", "cpu"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{data / 'test.txt'}: changed since the run {run} was trained" in line and "restore it" in line
    assert main(["evaluate", str(run), "--index", "--kind", "flat", "--threads", "1"]) == 2
    assert str(data / "test.txt") in one_error_line(capsys.readouterr().err)
    (data / "test.txt").write_text(original)  # restored (a new modification time, the same bytes)
    assert evaluate_run(run, device="cpu")["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"], abs=1e-7)


def test_an_edit_keeping_size_and_time_is_caught_by_the_pairs(fresh):
    data, run, picks = fresh
    path = data / "test.txt"
    stat = path.stat()
    old = picks[0][6]
    new = next(i for i in range(30) if i not in picks[0] and len(str(i)) == len(str(old)))
    path.write_text(path.read_text().replace(f"0 {old}\n", f"0 {new}\n", 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    with pytest.raises(CbnsError, match=r"the dataset read now is not the one the run .* was trained on \(sha256: "):
        evaluate_run(run, device="cpu")


def test_a_missing_data_file_is_named(fresh, capsys):
    data, run, _ = fresh
    (data / "test.txt").unlink()
    assert main(["evaluate", str(run), "--threads", "1", "--device", "cpu"]) == 2
    assert f"{data / 'test.txt'}: the run {run} was trained on this file and it is gone" in \
        one_error_line(capsys.readouterr().err)


def test_recommend_notes_an_edited_data_file_and_serves_the_run_as_trained(fresh, capsys):
    data, run, picks = fresh
    argv = ["recommend", str(run), "--user", "0", "--user", "7", "-k", "10", "--format", "json", "--threads", "1"]
    assert main(argv) == 0
    before = capsys.readouterr().out
    with open(data / "train.txt", "a") as fh:
        fh.write("40 1 2 3\n")  # a new user: the run knows nothing of it
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == before  # the run's own vectors and seen items, as trained
    notes = [line for line in err.splitlines() if line.startswith("cbns: note: ")]
    assert notes == [f"cbns: note: {data / 'train.txt'}: changed since the run {run} was trained (its SHA-256 is not "
                     f"the one in {run / SOURCE_FILE}); serving the run as it was trained"]


def test_seen_items_are_not_rebuilt_from_edited_data(fresh, capsys):
    data, run, picks = fresh
    (run / SEEN_FILE).unlink()  # serving must rebuild them from the dataset
    lines = (data / "train.txt").read_text().splitlines()
    lines[0] = "0 " + " ".join(map(str, picks[0][:5]))  # user 0 forgot one training item
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(CbnsError, match=rf"^{data / 'train.txt'}: changed since the run"):
        Recommender.from_run(run).recommend([0], k=5)
    assert main(["recommend", str(run), "--user", "0", "--threads", "1"]) == 2
    assert str(data / "train.txt") in one_error_line(capsys.readouterr().err)
    assert not (run / SEEN_FILE).exists()


def test_embeddings_of_another_run_are_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_data(data)
    first, second = train_tiny(data, tmp_path / "a", seed=0), train_tiny(data, tmp_path / "b", seed=1)
    mixed = copy_run(first, tmp_path / "mixed")
    (mixed / "user_embeddings.npy").write_bytes((second / "user_embeddings.npy").read_bytes())
    with pytest.raises(CbnsError, match=rf"^{mixed / 'user_embeddings.npy'}: not the file this run exported"):
        Recommender.from_run(mixed)
    assert main(["recommend", str(mixed), "--user", "0", "--threads", "1"]) == 2
    assert "the directory mixes files of two runs" in one_error_line(capsys.readouterr().err)
    assert main(["evaluate", str(mixed), "--index", "--kind", "flat", "--threads", "1"]) == 2
    assert str(mixed / "user_embeddings.npy") in one_error_line(capsys.readouterr().err)


def test_a_run_saved_before_the_record_is_served_and_evaluated_unchecked(fresh, capsys):
    data, run, _ = fresh
    legacy = copy_run(run, run.parent / "legacy")
    (legacy / SOURCE_FILE).unlink()
    assert evaluate_run(legacy, device="cpu") == evaluate_run(run, device="cpu")
    assert Recommender.from_run(legacy).recommend([0], k=3).rows.shape == (1, 3)
    assert capsys.readouterr().err == ""


def test_a_damaged_record_is_one_line(fresh, capsys):
    _, run, _ = fresh
    (run / SOURCE_FILE).write_text("{not json")
    assert main(["recommend", str(run), "--user", "0", "--threads", "1"]) == 2
    assert f"{run / SOURCE_FILE}: cannot read it" in one_error_line(capsys.readouterr().err)


def test_other_files_in_the_data_directory_are_not_the_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_data(data)
    (data / "notes.md").write_text("where the data came from\n")
    run = train_tiny(data, data / "run")  # the run directory inside the data directory
    assert set(json.loads((run / SOURCE_FILE).read_text())["files"]["data"]) == {"train.txt", "test.txt"}
    (data / "notes.md").write_text("edited\n")
    saved = json.loads((run / "metrics.json").read_text())
    assert evaluate_run(run, device="cpu")["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"], abs=1e-7)


def test_an_edited_attribute_file_is_named(tmp_path, capsys):
    from cbns.api import train
    from cbns.config import TrainConfig

    data = tmp_path / "data"
    data.mkdir()
    write_tiny_data(data)
    features = tmp_path / "items.csv"
    features.write_text("item,genre\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(30)))
    train(TrainConfig(data=str(data), item_features=str(features), item_tower="features", sampler="inbatch", dim=4,
                      hidden_dim=8, batch_size=32, epochs=1, threads=1), tmp_path / "run", progress=False, verbose=False)
    features.write_text("item,genre\n" + "".join(f"{i},{'ab'[i % 3 % 2]}\n" for i in range(30)))
    assert main(["evaluate", str(tmp_path / "run"), "--threads", "1", "--device", "cpu"]) == 2
    assert f"{features}: changed since the run" in one_error_line(capsys.readouterr().err)
