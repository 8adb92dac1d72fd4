"""Exact resume: a run killed with SIGKILL (or crashed) and resumed ends bit for bit where the
uninterrupted run ends; flags that would change the run are refused."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import without_timing

from cbns.api import resume, train
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.errors import CbnsError
from cbns.runs.checkpoint import LATEST, PREVIOUS, peek, read_checkpoint, read_latest
from cbns.runs.model_file import read_model_file
from cbns.training.callbacks.base import Callback

REPO = Path(__file__).resolve().parents[2]
#: Measurements of the machine, which no two runs share: wall-clock times and peak memory.


def small_args(data, sampler):
    """A 2-epoch run on the 400-user slice: 112 steps per epoch, a checkpoint every 25 steps (the
    sampler's own options only: cbns train refuses one the sampler does not read)."""
    own = {"cbns": ["--memory-size", "512", "--warmup-steps", "20"], "inbatch": []}[sampler]
    return ["--data", str(data), "--sampler", sampler, "--dim", "16", "--batch-size", "256", "--epochs", "2", *own,
            "--lr", "0.02", "--threads", "1", "--checkpoint-every", "25", "--no-progress"]


def assert_same_run(a: Path, b: Path):
    """Bitwise equal outputs: metrics (but timings), exported embeddings, model and objective state."""
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert without_timing(ma) == without_timing(mb)
    for name in ("user_embeddings.npy", "item_embeddings.npy"):
        assert np.array_equal(np.load(a / name), np.load(b / name)), name
    ca, cb = (read_model_file(d) for d in (a, b))
    for part in ("model", "objective"):
        assert ca[part].keys() == cb[part].keys()
        for key, value in ca[part].items():
            if torch.is_tensor(value):
                assert torch.equal(value, cb[part][key]), f"{part}.{key}"
        assert ca[part].get("_extra_state") is None or torch.equal(
            ca[part]["_extra_state"]["generator"], cb[part]["_extra_state"]["generator"])
    assert not list(b.glob("train_state*")), "checkpoints are removed once the run has finished"


def wait_for_mid_epoch_checkpoint(proc, path: Path, min_step: int, timeout: float = 180.0) -> dict:
    """Poll the checkpoint header (no sleeping blindly) until one at ``min_step`` or later, taken
    mid-epoch, is on disk; the run must still be going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before it could be killed"
        try:
            header = peek(path)
        except CbnsError:  # not written yet, or between the two renames of a new checkpoint
            header = None
        if header is not None and header["step"] >= min_step and header["batch"] > 0:
            return header
        time.sleep(0.002)
    raise AssertionError(f"no checkpoint at step >= {min_step} within {timeout}s")


@pytest.mark.slow
@pytest.mark.parametrize("sampler,signum", [("inbatch", signal.SIGKILL), ("cbns", signal.SIGKILL),
                                            ("cbns", signal.SIGTERM), ("inbatch", signal.SIGINT)])
def test_a_signal_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, gowalla_slice, sampler, signum, capsys):
    """SIGKILL leaves the last checkpoint; SIGTERM and SIGINT print one line and write a checkpoint
    after the step in progress. Either way the resumed run ends where the uninterrupted one does."""
    args = small_args(gowalla_slice, sampler)
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "cbns", "train", *args, "--out", str(killed)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # the warm-up (20 steps) is over by then, so the CBNS bank is full and in use
        seen = wait_for_mid_epoch_checkpoint(proc, killed / LATEST, min_step=50)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (killed / "metrics.json").exists()
    state, _, problems = read_latest(killed)
    assert not problems
    assert state["fit"]["batch"] > 0 and state["global_step"] >= 50  # mid-epoch
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        word = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}[signum]
        assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum]
        lines = err.splitlines()
        assert lines[0].startswith("data ") and all(line.startswith("recipe: ") for line in lines[1:-1])
        assert "Traceback" not in err
        assert lines[-1] == (f"cbns: {word} ({signal.Signals(signum).name}); the checkpoint at step "
                            f"{state['global_step']} is written; continue with: cbns train --resume {killed}")
        assert state["global_step"] >= seen["step"]
    if sampler == "cbns":
        assert int(state["objective"]["bank.filled"]) == 512 and int(state["objective"]["step"]) > 20

    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0
    reference = tmp_path / "reference"
    assert main(["train", *args, "--out", str(reference)]) == 0
    capsys.readouterr()
    assert_same_run(reference, killed)


class Crash(Callback):
    """Simulates a crash: raises at a given step or at the end of a given epoch."""

    class Boom(Exception):
        pass

    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def on_step_end(self, trainer):
        if trainer.global_step == self.step:
            raise Crash.Boom()

    def on_epoch_end(self, trainer, record):
        if trainer.state.epoch == self.epoch:
            raise Crash.Boom()


def small_config(data, sampler="uniform", **kw):
    return TrainConfig(**{**dict(data=str(data), sampler=sampler, dim=16, batch_size=512, epochs=2, lr=0.02,
                                 num_negatives=128, memory_size=256, warmup_steps=5, threads=1,
                                 checkpoint_every=10), **kw})


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, gowalla_slice):
    """Uninterrupted runs, one per sampler, computed once."""
    runs = {}
    for sampler in ("uniform", "cbns"):
        out = tmp_path_factory.mktemp(f"ref-{sampler}")
        train(small_config(gowalla_slice, sampler), out, progress=False, verbose=False)
        runs[sampler] = out
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("sampler,crash", [
    ("uniform", Crash(step=37)),       # mid-epoch, 7 steps after the checkpoint at step 30: replayed
    ("cbns", Crash(epoch=1)),          # after the epoch-1 checkpoint, before epoch 2
    ("cbns", Crash(epoch=2)),          # training done, crash before the test: resume only tests
])
def test_crash_then_resume_equals_uninterrupted_run(tmp_path, gowalla_slice, reference_runs, sampler, crash):
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(gowalla_slice, sampler), out, progress=False, verbose=False, callbacks=[crash])
    resume(out, progress=False, verbose=False)
    assert_same_run(reference_runs[sampler], out)


@pytest.mark.slow
def test_damaged_latest_falls_back_to_previous_and_leftover_temp_is_ignored(tmp_path, gowalla_slice,
                                                                           reference_runs, capsys):
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(gowalla_slice), out, progress=False, verbose=False, callbacks=[Crash(step=45)])
    assert peek(out / LATEST)["step"] == 40 and peek(out / PREVIOUS)["step"] == 30
    latest = (out / LATEST).read_bytes()
    (out / LATEST).write_bytes(latest[: len(latest) // 2])               # truncated mid-write
    (out / (LATEST + ".tmp-x1y2")).write_bytes(latest[: len(latest) // 3])  # a crash's leftover
    resume(out, progress=False, verbose=True)
    err = capsys.readouterr().err
    assert "train_state.ckpt: truncated checkpoint" in err and "using train_state.prev.ckpt instead" in err
    assert "step 30" in err
    assert_same_run(reference_runs["uniform"], out)  # replayed from step 30: the same run
    assert not list(out.glob("*.tmp-*"))


def test_no_readable_checkpoint_is_a_clear_error(tmp_path, gowalla_slice):
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(gowalla_slice, epochs=1), out, progress=False, verbose=False,
              callbacks=[Crash(step=12)])
    for name in (LATEST,):
        (out / name).write_bytes((out / name).read_bytes()[:-1])
    (out / PREVIOUS).write_bytes(b"")  # absent before the second checkpoint; make it damaged too
    with pytest.raises(CbnsError, match=r"run: no readable checkpoint \(.*train_state.ckpt: truncated checkpoint"):
        resume(out, progress=False, verbose=False)


class PoisonWeights(Callback):
    """Puts a NaN into the user embeddings after step ``step`` (what a diverging update does)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.global_step == self.step:
            with torch.no_grad():
                trainer.model.user_tower.embedding.weight[3, 0] = float("nan")


def test_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, gowalla_slice):
    out = tmp_path / "run"
    with pytest.raises(CbnsError) as info:
        train(small_config(gowalla_slice, epochs=1), out, progress=False, verbose=False,
              callbacks=[PoisonWeights(step=30)])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("step 30 (epoch 1): weight user_tower.embedding.weight holds 1 nan")
    assert f"the last good checkpoint {out / LATEST} (step 20) is intact" in message
    good = read_checkpoint(out / LATEST)
    assert good["global_step"] == 20
    assert all(torch.isfinite(v).all() for v in good["model"].values())


def test_nan_in_the_loss_stops_the_run_at_that_step(tmp_path, gowalla_slice):
    """Without a checkpoint between the poison and the next step, the guard the step records on the
    device fires at the read after it (every step on the CPU), before any callback or checkpoint."""
    out = tmp_path / "run"
    with pytest.raises(CbnsError, match=r"^step 24 \(epoch 1\): non-finite values in loss, "
                                        r"user_embeddings; .*last good checkpoint .* \(step 20\)"):
        train(small_config(gowalla_slice, epochs=1, normalize=False, sampler="inbatch"), out, progress=False,
              verbose=False, callbacks=[_PoisonEveryUser(step=23)])


class _PoisonEveryUser(PoisonWeights):
    def on_step_end(self, trainer):
        if trainer.global_step == self.step:
            with torch.no_grad():
                trainer.model.user_tower.embedding.weight[:, 0] = float("nan")


def test_not_enough_disk_space_is_reported_before_training(tmp_path, gowalla_slice, monkeypatch):
    import shutil

    from cbns.runs import disk_space

    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    started = []
    with pytest.raises(CbnsError, match=r"option out=.*run: 4.0 KB free on its filesystem, but checkpoints and "
                                        r"outputs need about [\d.]+ MB"):
        train(small_config(gowalla_slice), tmp_path / "run", progress=False, verbose=False,
              callbacks=[type("Spy", (Callback,), {"on_step_end": lambda self, t: started.append(1)})()])
    assert not started


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.slow
def test_resume_refuses_changes_and_unfinished_or_finished_runs(tmp_path, gowalla_slice, capsys):
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(gowalla_slice, epochs=1), out, progress=False, verbose=False, callbacks=[Crash(step=15)])
    code, err = run_cli(capsys, "train", "--resume", str(out), "--lr", "0.5")
    assert code == 2 and err.startswith("cbns: error: --lr 0.5: a resumed run keeps its configuration "
                                        f"(lr: 0.02 in {out / 'config.yaml'})") and err.count("\n") == 1
    code, err = run_cli(capsys, "train", "--resume", str(out), "--config", "x.yaml")
    assert code == 2 and "--config x.yaml: not allowed with --resume" in err
    code, err = run_cli(capsys, "train", "--resume", str(out), "--out", str(tmp_path / "elsewhere"))
    assert code == 2 and "a resumed run writes to its own directory" in err
    code, err = run_cli(capsys, "train", "--resume", str(out), "--nproc", "2")
    assert code == 2 and "--nproc 2: --resume continues single-process runs only" in err
    code, err = run_cli(capsys, "train", "--data", str(gowalla_slice), "--out", str(out))
    assert code == 2 and f"--out {out}: holds an unfinished run (checkpoint at step 10); continue it with " \
                         f"`cbns train --resume {out}`" in err

    config_file = out / "config.yaml"
    original = config_file.read_text()
    config_file.write_text(original.replace("lr: 0.02", "lr: 0.03"))
    code, err = run_cli(capsys, "train", "--resume", str(out))
    assert code == 2 and f"{config_file}: lr is 0.03, but the checkpoint train_state.ckpt was written with 0.02" in err
    config_file.write_text(original)

    # same value as saved, and the options that do not change the run, are accepted
    code, err = run_cli(capsys, "train", "--resume", str(out), "--lr", "0.02", "--threads", "1",
                        "--checkpoint-every", "7", "--no-progress")
    assert code == 0 and "resuming" in err and "step 10 (epoch 1, batch 10)" in err
    code, err = run_cli(capsys, "train", "--resume", str(out))
    assert code == 2 and "this run finished already" in err


@pytest.mark.slow
def test_resume_refuses_changed_data(tmp_path, gowalla_slice):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "test.txt"):
        (data / name).write_text((gowalla_slice / name).read_text())
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(data, epochs=1), out, progress=False, verbose=False, callbacks=[Crash(step=12)])
    lines = (data / "train.txt").read_text().splitlines()
    lines[5] += " 7"  # one more training pair for user 5
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(CbnsError, match=r"the dataset changed since the checkpoint .* was written \(train: "):
        resume(out, progress=False, verbose=False)


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """200 users with 8 time-ordered items each (of 60), as a sequence file."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("seq") / "Seq.txt"
    path.write_text("".join(" ".join(map(str, [u, *rng.choice(60, 8, replace=False)])) + "\n" for u in range(200)))
    return path


def history_config(data, **kw):
    """GRU user tower, CBNS with the streaming frequency estimate, leave-one-out: 1,200 train events,
    19 steps per epoch, a checkpoint every 5 steps."""
    return TrainConfig(**{**dict(data=str(data), split="loo", user_tower="gru", sampler="cbns",
                                 item_frequency="streaming", frequency_slots=64, dim=8, hidden_dim=16,
                                 max_history=5, batch_size=64, memory_size=128, epochs=2, lr=0.02, threads=1,
                                 checkpoint_every=5), **kw})


def test_history_tower_and_streaming_frequency_resume_exactly(tmp_path, sequences):
    reference = tmp_path / "reference"
    train(history_config(sequences), reference, progress=False, verbose=False)
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(history_config(sequences), out, progress=False, verbose=False, callbacks=[Crash(step=13)])
    state, _, _ = read_latest(out)
    assert state["global_step"] == 10 and state["fit"]["batch"] == 10
    # the estimator is part of the sampler's state: 10 steps seen, some slots written
    assert int(state["objective"]["frequency.step"]) == 10 and (state["objective"]["frequency.last_seen"] >= 0).any()
    resume(out, progress=False, verbose=False)
    assert_same_run(reference, out)


def test_a_resumed_epoch_keeps_the_phase_seconds_of_its_first_part(sequences):
    """The epoch's phase sums are loop state: an epoch resumed half-way adds to the saved ones."""
    from cbns.api import assemble, history_context
    from cbns.data.loading import load_data
    from cbns.training.trainer import Trainer

    config = history_config(sequences, epochs=1)
    data = load_data(config)
    model, objective = assemble(config, data)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False,
                      contexts=history_context(config, data, model))
    trainer.state.batch, trainer.state.phases = 17, {"encode": 1000.0, "data": 500.0}
    record = trainer.train_epoch(1)
    assert record["phases"]["encode"] >= 1000.0 and record["phases"]["data"] >= 500.0
    assert record["phases"]["encode"] < 1000.0 + record["seconds"] and trainer.state.phases == {}


def test_the_advice_to_start_over_names_every_checkpoint_file_and_is_not_repeated(capsys, tmp_path, gowalla_slice):
    out = tmp_path / "run"
    with pytest.raises(Crash.Boom):
        train(small_config(gowalla_slice, epochs=1), out, progress=False, verbose=False, callbacks=[Crash(step=25)])
    assert (out / LATEST).is_file() and (out / PREVIOUS).is_file()
    again = ["train", "--data", str(gowalla_slice), "--epochs", "1", "--dim", "8", "--threads", "1", "--no-progress",
             "--out", str(out)]
    code, err = run_cli(capsys, *again)
    assert code == 2 and err.endswith(f"or delete {out / LATEST} and {out / PREVIOUS} to start over\n")
    (out / LATEST).unlink()   # half of the advice followed: the refusal says what is left
    code, err = run_cli(capsys, *again)
    assert code == 2 and err.endswith(f"(checkpoint at step 10); continue it with `cbns train --resume {out}`, or "
                                      f"delete {out / PREVIOUS} to start over\n")
    (out / PREVIOUS).unlink()
    code, err = run_cli(capsys, *again)
    assert code == 0


def test_mid_epoch_checkpoints_count_steps_since_the_last_one(tmp_path, sequences, monkeypatch):
    """19 steps an epoch, a checkpoint every 5: after the epoch-end one at step 19 the next is at
    24, not 20 (one step later), and a run resumed from step 10 writes what the uninterrupted run
    writes from there."""
    import cbns.training.callbacks.checkpointer as checkpointer

    written = []

    def recording(run_dir, payload, summary):
        written.append(summary["step"])
        return real(run_dir, payload, summary)

    real = checkpointer.write_checkpoint
    monkeypatch.setattr(checkpointer, "write_checkpoint", recording)
    train(history_config(sequences), tmp_path / "whole", progress=False, verbose=False)
    assert written == [5, 10, 15, 19, 24, 29, 34, 38]
    written.clear()
    with pytest.raises(Crash.Boom):
        train(history_config(sequences), tmp_path / "cut", progress=False, verbose=False, callbacks=[Crash(step=13)])
    assert written == [5, 10]
    written.clear()
    resume(tmp_path / "cut", progress=False, verbose=False)
    assert written == [15, 19, 24, 29, 34, 38]
