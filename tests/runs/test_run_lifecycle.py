"""A run directory holds the previous finished run, untouched, or the new finished run (or, when
it held none, an unfinished run that resumes), never a mix: refused without overwrite, replaced
only once the new run has finished, nothing left by a failed start, one line for a full disk."""
import errno
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import copy_run, fuzz_settings, without_timing, write_tiny_lightgcn
from hypothesis import given
from hypothesis import strategies as st

from cbns.api import evaluate_run, resume, train
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.errors import CbnsError
from cbns.runs import atomic
from cbns.runs.checkpoint import LATEST, read_latest
from cbns.runs.model_file import read_model_file
from cbns.runs.run_lock import LOCK_FILE
from cbns.runs.staging import replaced_dir, settle, staging_dir
from cbns.training.callbacks.base import Callback

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """40 users with 6 of 30 items each to train on and one more to test (LightGCN files)."""
    return write_tiny_lightgcn(tmp_path_factory.mktemp("tiny"))


def config(data: Path, seed: int) -> TrainConfig:
    """7 steps, a checkpoint after each; another seed is another run of the same shapes (another
    validation carve, other weights)."""
    return TrainConfig(data=str(data), sampler="cbns", memory_size=64, dim=4, batch_size=32, epochs=1, threads=1,
                       seed=seed, checkpoint_every=1)


def cli_args(data: Path, seed: int) -> list[str]:
    return ["train", "--data", str(data), "--sampler", "cbns", "--memory-size", "64", "--dim", "4", "--batch-size",
            "32", "--epochs", "1", "--threads", "1", "--seed", str(seed), "--checkpoint-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data) -> dict[str, Path]:
    """The finished run with seed 1 ("old") and the one with seed 2 ("new"), each trained once."""
    out = {}
    for name, seed in (("old", 1), ("new", 2)):
        out[name] = tmp_path_factory.mktemp(name) / "run"
        train(config(data, seed), out[name], progress=False, verbose=False)
    return out


def files(run: Path) -> dict[str, bytes]:
    """Every file of ``run`` with its bytes (the lock file's content, the holder's pid, aside)."""
    return {p.name: (b"" if p.name == LOCK_FILE else p.read_bytes()) for p in sorted(run.iterdir())}


def same_run(a: Path, b: Path) -> bool:
    """The same training: metrics but the timings, exported embeddings and weights equal. (The
    recipe's lines are left out: a run resumed before its first checkpoint starts from its saved,
    already resolved configuration and has none to report.)"""
    ma, mb = ({k: v for k, v in json.loads((d / "metrics.json").read_text()).items() if k != "recipe"}
              for d in (a, b))
    if without_timing(ma) != without_timing(mb):
        return False
    for name in ("user_embeddings.npy", "item_embeddings.npy", "seen_items.npz", "config.yaml"):
        if (a / name).read_bytes() != (b / name).read_bytes():
            return False
    wa, wb = (read_model_file(d)["model"] for d in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def assert_whole(run: Path, old: Path, new: Path) -> str:
    """``run`` is the old run untouched or the new one, and its files agree with each other: the
    model file reproduces the recorded metrics and the exported embeddings. Returns which.
    A publication a crash left half done is completed first, as every command does."""
    settle(run)
    if files(run) == files(old):
        which = "old"
    else:
        assert same_run(run, new), f"{run} holds neither the old run nor the new one: {sorted(files(run))}"
        which = "new"
    recorded = json.loads((run / "metrics.json").read_text())
    recomputed = evaluate_run(run, device="cpu")
    assert recomputed.keys() >= {"test"} and recorded["test"]
    for part, metrics in recomputed.items():
        assert metrics == pytest.approx(recorded[part], rel=1e-6), part
    assert not list(run.glob(f"*{atomic.TMP_INFIX}*")) and not list(run.glob("train_state*"))
    return which


class Killed(BaseException):
    """What SIGKILL does to the writes in progress, in-process: nothing after it runs (no
    ``except Exception`` catches it; the temporary file of a write is left, as a kill leaves it)."""


def kill_at_rename(monkeypatch, when):
    """Make the rename that :func:`atomic.rename_path` does when ``when(count, src, dst)`` is true
    raise :class:`Killed` instead (every file and run directory cbns publishes is renamed there)."""
    real, count = atomic.rename_path, [0]

    def rename(src, dst):
        count[0] += 1
        if when(count[0], Path(src), Path(dst)):
            raise Killed(count[0])
        return real(src, dst)

    monkeypatch.setattr(atomic, "rename_path", rename)
    return count


class CrashAtStep(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.global_step == self.step:
            raise Killed(self.step)


# ---- a finished run is refused, and replaced only once the new run has finished ----

def test_train_on_a_finished_run_is_refused_and_leaves_it_untouched(tmp_path, data, runs, capsys, monkeypatch):
    run = copy_run(runs["old"], tmp_path / "run")
    before = files(run)
    with pytest.raises(CbnsError) as info:
        train(config(data, 2), run, progress=False, verbose=False)
    assert str(info.value) == (f"option out={run}: holds a finished run ({run / 'metrics.json'}); choose another out, "
                               f"or replace it with overwrite=True (it is replaced only once the new run has finished)")
    assert files(run) == before and not staging_dir(run).exists()

    # the command line's default --out makes it routine: the second run is refused, the first kept
    monkeypatch.chdir(tmp_path)
    assert main(cli_args(data, 1)) == 0
    first = files(tmp_path / "runs" / "latest")
    capsys.readouterr()
    assert main(cli_args(data, 2)) == 2
    assert capsys.readouterr().err == (
        "cbns: error: --out runs/latest: holds a finished run (runs/latest/metrics.json); choose another --out, or "
        "replace it with --overwrite (it is replaced only once the new run has finished)\n")
    assert files(tmp_path / "runs" / "latest") == first

    assert main([*cli_args(data, 2), "--overwrite"]) == 0
    assert same_run(tmp_path / "runs" / "latest", runs["new"])
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["latest"]  # nothing staged or replaced left


def test_overwrite_killed_before_its_first_checkpoint_leaves_the_old_run_whole(tmp_path, data, runs, capsys):
    """Before: the new config.yaml beside the old model and metrics; evaluate scored the old model
    on the new split. Now the old run is untouched and the new one resumes beside it."""
    run = copy_run(runs["old"], tmp_path / "run")
    before = files(run)
    with pytest.raises(Killed):
        train(config(data, 2), run, progress=False, verbose=False, overwrite=True, callbacks=[CrashAtStep(1)])
    assert files(run) == before
    assert assert_whole(run, runs["old"], runs["new"]) == "old"
    staging = staging_dir(run)
    assert (staging / "config.yaml").is_file() and read_latest(staging) is None  # no checkpoint yet

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert same_run(run, runs["new"]) and not staging.exists() and not replaced_dir(run).exists()
    code = main(["train", "--resume", str(run)])
    assert code == 2 and "this run finished already" in capsys.readouterr().err


@pytest.mark.parametrize("overwrite", [True, False])
def test_killed_between_the_two_embedding_files(tmp_path, data, runs, monkeypatch, capsys, overwrite):
    """Before: new user vectors beside old item vectors, under the old metrics.json. Now an
    overwrite leaves the old run whole; a first run is unfinished (no metrics.json) and resumes."""
    run = copy_run(runs["old"], tmp_path / "run") if overwrite else tmp_path / "run"
    before = files(run) if overwrite else None
    kill_at_rename(monkeypatch, lambda n, src, dst: dst.name == "item_embeddings.npy")
    with pytest.raises(Killed):
        train(config(data, 2), run, progress=False, verbose=False, overwrite=overwrite)
    monkeypatch.undo()
    live = staging_dir(run) if overwrite else run
    assert (live / "user_embeddings.npy").is_file() and not (live / "item_embeddings.npy").is_file()
    if overwrite:
        assert files(run) == before and assert_whole(run, runs["old"], runs["new"]) == "old"
        # a new run on it is refused: the unfinished one is continued, or deleted first
        code = main([*cli_args(data, 3), "--out", str(run), "--overwrite"])
        assert code == 2 and capsys.readouterr().err == (
            f"cbns: error: --out {run}: an unfinished run that replaces it is in {live}; continue it with "
            f"`cbns train --resume {run}`, or delete {live} to start over\n")
    else:
        assert not (run / "metrics.json").exists() and read_latest(run) is not None
    resume(run, progress=False, verbose=False)
    assert assert_whole(run, runs["old"], runs["new"]) == "new" and not staging_dir(run).exists()


def renames_in_a_run(data: Path, root: Path, overwrite: bool, old: Path) -> int:
    """How many renames a whole run makes (checkpoints, outputs, the publication)."""
    with pytest.MonkeyPatch.context() as mp:
        count = kill_at_rename(mp, lambda n, src, dst: False)
        run = copy_run(old, root / "count") if overwrite else root / "count"
        train(config(data, 2), run, progress=False, verbose=False, overwrite=overwrite)
    return count[0]


@pytest.mark.parametrize("overwrite", [True, False])
def test_a_run_killed_at_any_rename_leaves_one_whole_run_or_a_resumable_one(data, runs, tmp_path, overwrite):
    """Property: stop the run at its k-th rename (any checkpoint, output file or the publication),
    k drawn by hypothesis. The directory is then the old run, untouched, or the new one, whole;
    or, when it held no finished run, an unfinished one; and a resume always ends in the new run."""
    total = renames_in_a_run(data, tmp_path, overwrite, runs["old"])
    assert total > 20  # 7 checkpoints of 2 renames, the outputs, the publication

    @fuzz_settings(default_examples=15)
    @given(k=st.integers(min_value=1, max_value=total))
    def killed_at(k):
        with tempfile.TemporaryDirectory(dir=tmp_path) as root, pytest.MonkeyPatch.context() as mp:
            run = copy_run(runs["old"], Path(root) / "run") if overwrite else Path(root) / "run"
            kill_at_rename(mp, lambda n, src, dst: n == k)
            with pytest.raises(Killed):
                train(config(data, 2), run, progress=False, verbose=False, overwrite=overwrite)
            mp.undo()
            if overwrite or (run / "metrics.json").is_file() and not list(run.glob("train_state*")):
                assert assert_whole(run, runs["old"], runs["new"]) in ("old", "new")
            if not (staging_dir(run) / "config.yaml").exists() and (not run.exists() or files(run) == files(runs["old"])):
                # stopped before training started: nothing was left to resume, the run starts again
                assert not staging_dir(run).exists() and (overwrite or not run.exists())
                train(config(data, 2), run, progress=False, verbose=False, overwrite=overwrite)
            elif staging_dir(run).exists() or not (run / "metrics.json").is_file() or list(run.glob("train_state*")):
                resume(run, progress=False, verbose=False)
            assert assert_whole(run, runs["old"], runs["new"]) == "new"
            assert sorted(p.name for p in Path(root).iterdir()) == ["run"]

    killed_at()


def test_a_crash_between_the_two_renames_of_the_publication_is_completed_by_the_next_command(tmp_path, data, runs,
                                                                                            monkeypatch):
    """Killed with the old run renamed aside and the new one not yet in place: the next command
    that reads the directory (here evaluate) completes the publication."""
    run = copy_run(runs["old"], tmp_path / "run")
    kill_at_rename(monkeypatch, lambda n, src, dst: src == staging_dir(run))
    with pytest.raises(Killed):
        train(config(data, 2), run, progress=False, verbose=False, overwrite=True)
    monkeypatch.undo()
    assert not run.exists() and replaced_dir(run).is_dir() and staging_dir(run).is_dir()
    assert assert_whole(run, runs["old"], runs["new"]) == "new"
    assert not replaced_dir(run).exists() and not staging_dir(run).exists()


# ---- a failed start leaves nothing behind ----

class WideTower(torch.nn.Module):
    """64-wide user vectors where the model's dim is 4: fails at the first step."""

    def __init__(self, n: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(n, 64)

    def forward(self, ids, context=None):
        return self.embedding(ids)


def test_a_failed_start_leaves_nothing_behind(tmp_path, data, runs, capsys):
    fresh = tmp_path / "fresh"
    with pytest.raises(CbnsError):  # data that fails to load
        train(config(tmp_path / "no-such-data", 2), fresh, progress=False, verbose=False)
    assert not fresh.exists()
    with pytest.raises(Exception):  # noqa: B017  (bad towers: whatever the error, nothing is left)
        train(config(data, 2), fresh, progress=False, verbose=False, user_tower=WideTower(40))
    assert not fresh.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    code = main([*cli_args(tmp_path / "no-such-data", 2), "--out", str(empty)])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
    assert list(empty.iterdir()) == []

    run = copy_run(runs["old"], tmp_path / "run")
    (run / LOCK_FILE).unlink()
    before = files(run)
    with pytest.raises(Exception):  # noqa: B017
        train(config(data, 2), run, progress=False, verbose=False, overwrite=True, user_tower=WideTower(40))
    assert files(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"]


# ---- a full disk and a file-size limit end in one line naming the file ----

def fail_writes(monkeypatch, name: str, err: int, skip: int = 0):
    """Writes into ``name``'s temporary files raise ``OSError(err)``, after ``skip`` files were written."""
    real, seen = atomic._ErrorRecorder.write, []

    def write(self, data):
        if self.path.name == name:
            if id(self) not in seen:
                seen.append(id(self))
            if len(seen) > skip:
                self.error = OSError(err, os.strerror(err))
                raise self.error
        return real(self, data)

    monkeypatch.setattr(atomic._ErrorRecorder, "write", write)


def test_disk_full_during_a_checkpoint_is_one_line_and_the_run_resumes(tmp_path, data, runs, capsys, monkeypatch):
    run = tmp_path / "run"
    fail_writes(monkeypatch, LATEST, errno.ENOSPC, skip=3)  # torch.save reports it as a RuntimeError
    code = main([*cli_args(data, 2), "--out", str(run)])
    err = capsys.readouterr().err  # the data and recipe lines, then the error
    assert code == 2 and "Traceback" not in err and err.splitlines()[-1] == (
        f"cbns: error: {run / LATEST}: cannot write (No space left on device); the previous version, if any, "
        f"is left as it was; the checkpoint at step 3 is kept: continue with cbns train --resume {run} once there "
        f"is room")
    assert not list(run.glob(f"*{atomic.TMP_INFIX}*"))
    monkeypatch.undo()
    assert read_latest(run)[0]["global_step"] == 3
    resume(run, progress=False, verbose=False)
    assert same_run(run, runs["new"])


def test_disk_full_during_the_final_writes_of_an_overwrite_keeps_the_old_run(tmp_path, data, runs, monkeypatch):
    run = copy_run(runs["old"], tmp_path / "run")
    before = files(run)
    fail_writes(monkeypatch, "user_embeddings.npy", errno.ENOSPC)
    with pytest.raises(CbnsError, match=r"^\S+/\.run\.cbns-staging/user_embeddings\.npy: cannot write \(No space "):
        train(config(data, 2), run, progress=False, verbose=False, overwrite=True)
    monkeypatch.undo()
    assert files(run) == before
    assert not list(staging_dir(run).glob(f"*{atomic.TMP_INFIX}*"))
    resume(run, progress=False, verbose=False)
    assert same_run(run, runs["new"])


def test_a_file_size_limit_is_one_line_naming_the_file(tmp_path, data):
    """``ulimit -f``: the write fails with EFBIG (SIGXFSZ, which would kill the process, is ignored)."""
    run = tmp_path / "run"
    limit = 4096  # config.yaml fits; a checkpoint (about 20 KB) does not

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "cbns", *cli_args(data, 2), "--out", str(run)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (f"cbns: error: {run / LATEST}: cannot write (File too large); the "
                                            f"previous version, if any, is left as it was")  # none written yet
    assert "Traceback" not in proc.stderr
    assert not list(run.glob(f"*{atomic.TMP_INFIX}*"))


KILLER = """
import os, signal, sys
from pathlib import Path
from cbns.runs import atomic
side, name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
real, seen = atomic.rename_path, [0]
def rename(src, dst):
    if Path(src if side == "src" else dst).name == name:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
atomic.rename_path = rename
from cbns.cli import main
sys.exit(main(sys.argv[4:]))
"""


@pytest.mark.parametrize("side,name,nth", [
    ("dst", "config.yaml", 1),          # its first write: nothing to resume yet
    ("dst", LATEST, 3),                 # a checkpoint
    ("dst", "item_embeddings.npy", 1),  # between the two embedding files
    ("dst", "metrics.json", 1),         # the last output
    ("src", "run", 1),                  # the old run renamed aside, the new one not yet in place
    ("dst", "run", 1),                  # the new run in place, the old one not yet deleted
])
def test_kill_9_at_any_point_of_an_overwrite_leaves_a_whole_run_or_a_resumable_one(tmp_path, data, runs, side, name,
                                                                                   nth):
    run = copy_run(runs["old"], tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILLER, side, name, str(nth), *cli_args(data, 2), "--out", str(run),
                           "--overwrite"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    which = assert_whole(run, runs["old"], runs["new"])  # what the next command (evaluate) finds
    assert which == ("new" if name == "run" else "old")
    if which == "old":
        staging = staging_dir(run)
        if read_latest(staging) is not None or (staging / "config.yaml").is_file():
            assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        else:  # killed before it wrote anything worth resuming: the command runs again
            assert main([*cli_args(data, 2), "--out", str(run), "--overwrite"]) == 0
    assert assert_whole(run, runs["old"], runs["new"]) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
