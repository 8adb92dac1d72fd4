"""A warm-up that outlasts the run (the bank is never read) is a warning naming both numbers; so
is a warm-up with no bank at all (memory size 0)."""
from cbns.cli import main
from cbns.config import TrainConfig
from cbns.config.warmup_reach import run_steps, warmup_warning


def table(tmp_path, users=10, items=6):
    path = tmp_path / "d.csv"
    path.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(users) for i in range(items)))
    return path


def test_run_steps_is_epochs_times_batches_per_epoch():
    config = TrainConfig(epochs=3, batch_size=16)
    assert run_steps(config, 48) == 9 and run_steps(config, 49) == 12 and run_steps(config, 1) == 3


def test_a_warmup_beyond_the_run_warns_with_both_numbers(capsys, tmp_path):
    data = table(tmp_path)  # 60 pairs, round(0.2 * 6) = 1 per user test: at most 50 train, 4 batches of 16
    code = main(["train", "--data", str(data), "--batch-size", "16", "--epochs", "2", "--warmup-steps", "8",
                 "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0
    # so at most 2 x 4 = 8 steps: a warm-up of 8 ends with the run
    warning = [line for line in err.splitlines() if "warmup_steps" in line]
    assert len(warning) == 1 and warning[0].startswith("cbns: warning: warmup_steps 8 is not below the run's ")
    assert f"pairs of {data} in batches of 16): the memory bank of 4,096 items is never read" in warning[0]


def test_a_warmup_within_the_run_is_silent():
    config = TrainConfig(epochs=2, batch_size=16, warmup_steps=5)
    assert warmup_warning(config, 48, "d.csv") is None  # 6 steps: step 5 reads the bank
    assert warmup_warning(config.replace(warmup_steps=6), 48, "d.csv") == (
        "cbns: warning: warmup_steps 6 is not below the run's 6 training steps (2 epoch(s) of 48 pairs of d.csv "
        "in batches of 16): the memory bank of 4,096 items is never read")
    assert warmup_warning(config.replace(sampler="inbatch", warmup_steps=0), 48, "d.csv") is None


def test_a_warmup_with_no_bank_is_a_warning(capsys, tmp_path):
    config = TrainConfig(memory_size=0, warmup_steps=5).validate()
    assert warmup_warning(config, 48, "d.csv") == ("cbns: warning: warmup_steps 5 has no effect: memory_size is 0, so "
                                                   "there is no bank to warm up (the run is the in-batch softmax)")
    assert warmup_warning(config.replace(warmup_steps=0), 48, "d.csv") is None  # no warm-up, nothing to say
    code = main(["train", "--data", str(table(tmp_path)), "--memory-size", "0", "--warmup-steps", "5", "--epochs", "1",
                 "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0 and "cbns: warning: warmup_steps 5 has no effect: memory_size is 0" in err
