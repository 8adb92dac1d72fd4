"""Sizes that pass their range check are checked against the memory they need before anything is
allocated: one line naming the option, never an allocator traceback."""
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.cli import main
from cbns.cli.options import flag_name
from cbns.config import TrainConfig
from cbns.errors import CbnsError
from cbns.training import memory_need
from cbns.training.memory_need import check_memory, memory_parts, table_copies


@pytest.mark.parametrize("flags,option", [
    (["--sampler", "cbns", "--memory-size", "2147483647"], "--memory-size 2147483647"),
    (["--sampler", "cbns", "--memory-size", "500000000"], "--memory-size 500000000"),
    (["--sampler", "uniform", "--num-negatives", "2147483647"], "--num-negatives 2147483647"),
    (["--dim", "2147483647"], "--dim 2147483647"),
    (["--user-tower", "gru", "--hidden-dim", "2147483647"], "--hidden-dim 2147483647"),
])
def test_the_issue_sizes_are_refused_before_allocating(capsys, tmp_path, gowalla_slice, flags, option):
    code = main(["train", "--data", str(gowalla_slice), "--threads", "1", "--no-progress", *flags,
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"cbns: error: {option}: the run needs about ") and "is available; use a smaller" in err[0]
    assert not (tmp_path / "o" / "config.yaml").exists()


def test_the_tables_term_is_the_model_weights_times_the_copies_held():
    from cbns.model.build import build_model

    for sparse, copies in ((True, 5), (False, 6)):  # weights, 2 moments, best, ranking copy (+ dense gradient)
        config = TrainConfig(dim=12, item_bias=True, sparse_updates=sparse).validate()
        weights = sum(p.numel() * 4 for p in build_model(config, 50, 70).parameters())  # counted from the model
        tables = next(p for p in memory_parts(config, 50, 70) if p.option == "dim")
        assert table_copies(config) == copies and tables.bytes == copies * weights


sizes = st.sampled_from([1, 7, 1024, 65536, 2**20, 2**25, 2**31 - 1])


@fuzz_settings(200)
@given(sampler=st.sampled_from(["inbatch", "uniform", "mns", "cbns"]), dim=sizes, memory=sizes, negatives=sizes,
       batch=sizes, free=st.sampled_from([2**20, 2**30, 2**35, 2**40]))
def test_refused_exactly_when_the_parts_exceed_the_free_memory(sampler, dim, memory, negatives, batch, free):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_need, "available_memory", lambda: free)
        check_against(sampler, dim, memory, negatives, batch, free)


def check_against(sampler, dim, memory, negatives, batch, free):
    config = TrainConfig(sampler=sampler, dim=dim, memory_size=memory, num_negatives=negatives,
                         batch_size=batch).validate()
    parts = memory_parts(config, 1000, 2000)
    needed = sum(p.bytes for p in parts)
    if needed <= free:
        check_memory(config, 1000, 2000)
        return
    biggest = max(parts, key=lambda p: p.bytes)
    flag, value = "--" + biggest.option.replace("_", "-"), config[biggest.option]
    with pytest.raises(CbnsError, match=rf"^option {biggest.option}={value}: the run needs about ") as caught:
        check_memory(config, 1000, 2000)
    assert caught.value.render(flag=flag_name).startswith(f"{flag} {value}: the run needs about ")


def test_a_batch_larger_than_the_training_pairs_is_sized_by_the_pairs():
    """A batch holds at most every training pair once: batch 100000 on 240 pairs is a batch of 240."""
    config = TrainConfig(sampler="cbns", dim=8, memory_size=4096, batch_size=100_000).validate()
    step = next(p for p in memory_parts(config, 40, 20, train_pairs=240) if "softmax" in p.what)
    # 240 rows x (239 in-batch + 4096 bank + 1 positive) columns, 3 copies; 4096 bank vectors of 8, 3 copies
    assert step.bytes == 3 * 4 * (240 * 4336 + 4096 * 8) == 12_880_896
    unknown = next(p for p in memory_parts(config, 40, 20) if "softmax" in p.what)  # pairs unknown: a full batch
    assert unknown.bytes == 3 * 4 * (100_000 * 104_096 + 4096 * 8)
    small = TrainConfig(sampler="cbns", dim=8, memory_size=4096, batch_size=64).validate()
    assert memory_parts(small, 40, 20, train_pairs=240) == memory_parts(small, 40, 20)  # batch below the pairs


def test_a_huge_batch_on_a_small_table_trains(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(memory_need, "available_memory", lambda: 2**30)  # 1 GiB: a full batch would need ~125 GB
    data = tmp_path / "d.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(40) for i in range(6)))  # 240 rows
    code = main(["train", "--data", str(data), "--batch-size", "100000", "--epochs", "1", "--dim", "8",
                 "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
