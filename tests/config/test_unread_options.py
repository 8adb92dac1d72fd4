"""Options the chosen sampler and towers do not read: refused as flags, warned about from a config
file, ignored by the library API (a study's base sets options for cells of several samplers)."""
import pytest

from cbns.cli import main
from cbns.config import TrainConfig
from cbns.config.unread_options import unread_options


@pytest.mark.parametrize("flags,message", [
    (["--user-features", "f.csv"], "--user-features f.csv: --user-tower id does not read it (read only by "
                                   "--user-tower pooled, --user-tower features); drop the flag"),
    (["--item-features", "f.csv", "--user-tower", "features"], "--item-features f.csv: --item-tower id does not read it"),
    (["--sampler", "inbatch", "--memory-size", "10"], "--memory-size 10: --sampler inbatch does not read it"),
    (["--sampler", "cbns", "--num-negatives", "64"], "--num-negatives 64: --sampler cbns does not read it (read only "
                                                     "by --sampler uniform, --sampler popularity, --sampler mns)"),
    (["--hidden-dim", "64"], "--hidden-dim 64: --user-tower id does not read it"),
    (["--sampler", "uniform", "--warmup-steps", "0"], "--warmup-steps 0: --sampler uniform does not read it"),
    (["--split", "loo", "--valid-fraction", "0.2"], "--valid-fraction 0.2: --split loo does not read it (read only "
                                                    "by --split random, --split temporal); drop the flag"),
])
def test_an_unread_flag_is_refused_in_one_line(capsys, tmp_path, flags, message):
    code = main(["train", *flags, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"cbns: error: {message}" + err[len("cbns: error: ") + len(message):]
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_an_unread_option_from_a_config_file_is_a_warning(capsys, tmp_path, gowalla_slice):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nnum_negatives: 64\ndim: 8\n")
    code = main(["train", "--config", str(cfg), "--data", str(gowalla_slice), "--sampler", "inbatch", "--threads", "1",
                 "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0
    assert f"cbns: warning: {cfg}:2: num_negatives 64 has no effect: --sampler inbatch does not read it" in err


def test_the_chosen_components_read_their_options():
    assert unread_options(TrainConfig(sampler="uniform", num_negatives=64)) == {}
    assert unread_options(TrainConfig(user_tower="pooled", user_features="u.csv", pool_decay=0.5)) == {}
    assert unread_options(TrainConfig(item_tower="features", item_features="i.csv", hidden_dim=32)) == {}
    assert set(unread_options(TrainConfig(user_tower="gru", user_features="u.csv", pool_decay=0.5))) == \
        {"user_features", "pool_decay"}


def test_valid_fraction_from_a_config_file_with_split_loo_is_a_warning(capsys, tmp_path):
    rows = "".join(f"{u},{i},{i}\n" for u in range(6) for i in range(4))
    (tmp_path / "d.csv").write_text("user,item,timestamp\n" + rows)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nsplit: loo\nvalid_fraction: 0.3\ndim: 8\n")
    code = main(["train", "--config", str(cfg), "--data", str(tmp_path / "d.csv"), "--threads", "1", "--no-progress",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0
    assert f"cbns: warning: {cfg}:3: valid_fraction 0.3 has no effect: --split loo does not read it" in err


def test_the_splits_that_carve_a_validation_share_read_valid_fraction():
    assert unread_options(TrainConfig(split="random", valid_fraction=0.3)) == {}
    assert unread_options(TrainConfig(split="temporal", valid_fraction=0.3)) == {}
    assert set(unread_options(TrainConfig(split="loo", valid_fraction=0.3))) == {"valid_fraction"}
    assert unread_options(TrainConfig(split="loo")) == {}  # the default is no choice
