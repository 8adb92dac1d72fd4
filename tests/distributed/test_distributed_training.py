"""Distributed training: two gloo processes on CPU against one process on the same examples."""
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.api import assemble
from cbns.cli.process_settings import rank_threads
from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.distributed import all_gather_rows, gather_rows_with_grad, init_distributed, shard_batches, split_sizes
from cbns.distributed.gather import row_counts
from cbns.evaluation.ranking import evaluate_split, full_ranking, ranking_matrices
from cbns.model.build import build_model
from cbns.negatives import Candidates
from cbns.objective.logits import MASKED, sampled_softmax_logits
from cbns.training.trainer import Trainer

# The steps of the two-rank test: global batches of (user, item) rows and how they split over
# ranks 0 and 1 (contiguous, the first rank one row more when uneven, none left for rank 1 at
# the end). Item 3 appears on both ranks in step 1 and item 5 twice in step 2: accidental hits
# across ranks.
STEPS = [
    ([(0, 3), (1, 1), (2, 5), (3, 7), (4, 3), (5, 0), (6, 2), (7, 8)], 4),
    ([(8, 5), (9, 5), (10, 4), (1, 6), (2, 3)], 3),
    ([(11, 7)], 1),
]
CASES = [
    dict(sampler="inbatch", item_side="joint"),
    dict(sampler="cbns", item_side="split", memory_size=6, warmup_steps=1),
    dict(sampler="cbns", item_side="joint", memory_size=6, warmup_steps=1, bank_mode="refresh"),
    dict(sampler="mns", item_side="split", num_negatives=4),
]


# A GRU user tower reading each pair's history (the user's earlier train pairs in file order),
# with the streaming frequency estimate: steps over rows of the training pairs, given by index so
# that each rank can build its rows' history context. The joint item side: in the last step (one
# row) the split item side's softmax has one fresh column, so that item's gradient is zero in exact
# arithmetic and float noise of ~1e-7 (P * (1 / P) != 1) whose sign depends on the last bits of the
# inputs; Adam normalises it into a step of about lr either way, so no two summation orders agree
# on it (this was the cosine-only mismatch of ~1e-2 once noted here; constant lr had hidden it by
# luck).
HISTORY_CASE = dict(sampler="cbns", item_side="joint", memory_size=6, warmup_steps=1, user_tower="gru",
                    hidden_dim=6, max_history=3, item_frequency="streaming", frequency_slots=16)
HISTORY_STEPS = [(list(range(8)), 4), (list(range(8, 13)), 3), ([13], 1)]


def toy_data() -> Interactions:
    rng = np.random.default_rng(1)
    pairs = np.stack([rng.integers(0, 12, 60), rng.integers(0, 9, 60)], 1)
    return Interactions("toy", 12, 9, train=pairs[:40], test=pairs[40:])


def toy_config(case: dict) -> TrainConfig:
    # The default cosine schedule over 10 epochs of one step each: every step at its own lr.
    return TrainConfig(**{"data": "toy", "dim": 4, "lr": 0.05, "temperature": 0.5, "seed": 3, "lr_schedule": "cosine", **case})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, port: int, out: str) -> None:
    """One rank: the steps of every case, then a bank round trip and a sharded evaluation."""
    from cbns.evaluation.sharded import evaluate_sharded

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    ctx = init_distributed()
    results = []
    data = toy_data()
    for case in CASES:
        config = toy_config(case)
        model, objective = assemble(config, data, ctx=ctx)
        trainer = Trainer(config, data, model, objective, progress=False, ctx=ctx)
        losses = []
        for rows, first in STEPS:
            mine = rows[:first] if rank == 0 else rows[first:]
            losses.append((len(mine), trainer.step(torch.tensor(mine, dtype=torch.long).reshape(-1, 2))))
        # Saved once (rank 0), restored on every rank into a fresh objective.
        path = Path(out) / f"objective-{case['sampler']}-{case.get('bank_mode', 'stale')}.pt"
        if ctx.is_main:
            torch.save(objective.state_dict(), path)
        ctx.barrier()
        _, restored = assemble(config, data, ctx=ctx)
        restored.load_state_dict(torch.load(path, weights_only=True))
        results.append({"losses": losses, "model": model.state_dict(), "objective": objective.state_dict(),
                        "restored": restored.state_dict()})
    metrics = evaluate_sharded(model, data, "test", [2, 5], ctx, chunk_size=3)
    history = _history_steps(ctx, rank, data)
    torch.save({"cases": results, "metrics": metrics, "history": history}, Path(out) / f"rank{rank}.pt")
    ctx.close()


def _history_steps(ctx, rank: int, data: Interactions) -> dict:
    """:data:`HISTORY_CASE` on this rank: its share of each step, with its rows' history context."""
    from cbns.data.history import HistoryContext
    from cbns.evaluation.sharded import evaluate_sharded

    config = toy_config(HISTORY_CASE)
    model, objective = assemble(config, data, ctx=ctx)
    contexts = HistoryContext(data, config.model.max_history)
    trainer = Trainer(config, data, model, objective, progress=False, contexts=contexts, ctx=ctx)
    losses = []
    for rows, first in HISTORY_STEPS:
        index = torch.tensor(rows[:first] if rank == 0 else rows[first:], dtype=torch.long)
        losses.append((len(index), trainer.step(trainer.train_pairs[index], contexts.for_pairs(index))))
    metrics = evaluate_sharded(model, data, "test", [2, 5], ctx, chunk_size=3,
                               user_context=contexts.for_users("test"))
    return {"losses": losses, "model": model.state_dict(), "objective": objective.state_dict(), "metrics": metrics}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("two-ranks")
    # fork: the children start with torch already imported (spawn re-imports it, seconds per rank)
    mp.start_processes(_two_rank_worker, args=(free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def _assert_ranks_match_one_process(ranks, steps, want, model) -> None:
    """Each step's loss, averaged over the two ranks by their row counts, equals the one-process
    loss ``want``; both ranks end with the same weights, and with the one-process ``model``'s."""
    for step, (rows, _) in enumerate(steps):
        (n0, l0), (n1, l1) = ranks[0]["losses"][step], ranks[1]["losses"][step]
        assert n0 + n1 == len(rows)
        assert abs((n0 * l0 + n1 * l1) / len(rows) - want[step]) < 1e-5, (step, l0, l1, want[step])
    for name, value in model.state_dict().items():
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name
        assert torch.allclose(ranks[0]["model"][name], value, atol=1e-6), name


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c['sampler']}-{c['item_side']}" for c in CASES])
def test_two_ranks_take_the_same_steps_as_one_rank_on_the_global_batch(two_ranks, index):
    config = toy_config(CASES[index])
    data = toy_data()
    model, objective = assemble(config, data)
    single = Trainer(config, data, model, objective, progress=False, verbose=False)
    want = [single.step(torch.tensor(rows)) for rows, _ in STEPS]
    ranks = [r["cases"][index] for r in two_ranks]
    _assert_ranks_match_one_process(ranks, STEPS, want, model)
    for name, value in objective.state_dict().items():
        if name.endswith("_extra_state"):
            continue
        for r in ranks:
            assert torch.equal(r["objective"][name], r["restored"][name]), name
            assert torch.allclose(r["objective"][name].float(), value.float(), atol=1e-6), name
    if config.sampler.name == "cbns":
        # Items enqueued in global order 3 1 5 7 3 0 2 8 | 5 5 4 6 3 | 7: the bank holds the last
        # 6, written oldest first after the ring wrapped to slot 0.
        assert ranks[0]["objective"]["bank.ids"].tolist() == [5, 5, 4, 6, 3, 7]


def test_sharded_evaluation_equals_single_process(two_ranks):
    config = toy_config(CASES[-1])
    data = toy_data()
    model = build_model(config, data.num_users, data.num_items)
    model.load_state_dict(two_ranks[0]["cases"][-1]["model"])
    relevant, exclude = ranking_matrices(data, "test")
    # The single-process evaluator with the same chunks of users (the default chunk in a real run).
    users, items = model.ranking_vectors(model.all_users(12), model.all_items(9))  # + the item bias column
    want = full_ranking(users, items, relevant, exclude, [2, 5], chunk_size=3)
    assert want == pytest.approx(evaluate_split(model, data, "test", [2, 5]), abs=1e-6)
    for rank in two_ranks:
        assert rank["metrics"].keys() == want.keys()
        assert all(abs(rank["metrics"][k] - want[k]) < 1e-12 for k in want), (rank["metrics"], want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(1, 9), st.integers(1, 4))
def test_shards_cover_every_row_once_in_the_single_process_batches(n, batch_size, world):
    order = torch.randperm(n)
    shards = [shard_batches(order, batch_size, r, world) for r in range(world)]
    single = torch.split(order, batch_size)
    for rank_batches in shards:
        assert len(rank_batches) == len(single)
    for step, batch in enumerate(single):
        parts = [shards[r][step] for r in range(world)]
        assert torch.equal(torch.cat(parts), batch)  # rank order restores the global batch
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_split_sizes_by_hand():
    assert split_sizes(10, 4) == [3, 3, 2, 2]
    assert split_sizes(8, 2) == [4, 4]
    assert split_sizes(1, 3) == [1, 0, 0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 5), st.integers(1, 5), st.integers(0, 10_000))
def test_logits_of_a_rank_inside_a_gathered_block_equal_the_reference(rows, before, after, num_ids, seed):
    """Rank rows [o, o + n) of a global in-batch block, plus a bank: against the plain steps."""
    g = torch.Generator().manual_seed(seed)
    total = before + rows + after
    ids = torch.randint(0, num_ids, (total,), generator=g)
    table = torch.randn(num_ids, 3, generator=g)
    logq_table = -torch.rand(num_ids, generator=g) * 3
    users = torch.randn(rows, 3, generator=g)
    local = slice(before, before + rows)
    bank_ids = torch.randint(0, num_ids, (4,), generator=g)
    block = Candidates(table[ids], ids, logq_table[ids], "inbatch", holds_positives=True, positive_offset=before)
    bank = Candidates(table[bank_ids], bank_ids, logq_table[bank_ids], "bank", item_grad=False)
    got, target = sampled_softmax_logits(users, table[ids[local]], ids[local], logq_table[ids[local]],
                                         [block, bank], temperature=0.7)
    assert torch.equal(target, torch.arange(before, before + rows))
    # Reference: column 0 = positive, then every candidate with the row's positive id masked.
    pos = (users * table[ids[local]]).sum(-1, keepdim=True) / 0.7 - logq_table[ids[local]][:, None]
    blocks = [((users @ s.emb.T) / 0.7 - s.logq).masked_fill(ids[local][:, None] == s.ids[None, :], MASKED)
              for s in (block, bank)]
    want = torch.cat([pos, *blocks], 1)
    assert torch.allclose(got.gather(1, target[:, None]).squeeze(1), want[:, 0], atol=1e-5)
    assert torch.allclose(torch.logsumexp(got, 1), torch.logsumexp(want, 1), atol=1e-4)


def test_single_process_is_a_no_op():
    ctx = init_distributed({})
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_rows_with_grad(x, row_counts(3), 0) is x and all_gather_rows(x, [3], 0) is x
    assert ctx.sum([1.5, 2]) == [1.5, 2.0] and rank_threads(0, {}) == 0 and rank_threads(3, {}) == 3
    cores = len(os.sched_getaffinity(0))
    assert rank_threads(0, {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}) == max(1, cores // 2)


@pytest.mark.parametrize("argv,env,message", [
    (["--nproc", "0"], {}, "cbns: error: --nproc: must be >= 1, got 0"),
    (["--nproc", "2"], {"WORLD_SIZE": "2"}, "cbns: error: --nproc 2: this process already runs under a launcher"),
    (["--nproc", "2", "--data", "/no/such/dir"], {}, "cbns: error: --data /no/such/dir: no such file"),
])
def test_launcher_errors_end_in_one_line_before_any_rank_starts(capfd, monkeypatch, tmp_path, argv, env, message):
    from cbns.cli import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["train", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capfd.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.slow
def test_cli_two_processes_on_a_real_slice(tmp_path, gowalla_slice, capfd):
    from cbns.api import evaluate_run, train
    from cbns.cli import main

    options = dict(data=str(gowalla_slice), epochs=1, dim=16, batch_size=256, memory_size=512,
                   warmup_steps=5, lr=0.02, threads=1)
    train(TrainConfig(**options), tmp_path / "one", progress=False, verbose=False)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    capfd.readouterr()
    code = main(["train", "--nproc", "2", "--no-progress", "--out", str(tmp_path / "two"), *argv])
    stdout, stderr = capfd.readouterr()
    assert code == 0, stderr[-3000:]
    assert stdout.count("run directory:") == 1 and stdout.count("epoch   1") == 1  # rank 0 alone prints
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))
    assert _layout(one) == _layout(two) and (one["world_size"], two["world_size"]) == (1, 2)
    # A single-process evaluation of the saved weights gives the metrics the two ranks reported.
    again = evaluate_run(tmp_path / "two")
    assert all(abs(again["test"][k] - v) < 1e-9 for k, v in two["test"].items())
    # Both runs took the same global batches from the same start: the same model up to float
    # summation order (Adam amplifies the last bits of near-zero gradients, hence the tolerance).
    assert abs(one["history"][0]["loss"] - two["history"][0]["loss"]) < 1e-4 * one["history"][0]["loss"]
    assert abs(one["test"]["recall@20"] - two["test"]["recall@20"]) < 2e-3


def _layout(value):
    """The nested key structure of a JSON value, without the numbers."""
    if isinstance(value, dict):
        return {k: _layout(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_layout(v) for v in value]
    return type(value).__name__


def test_history_tower_and_streaming_frequency_on_two_ranks_equal_one_rank(two_ranks):
    """Each rank encodes its rows with their own histories (a rank with no rows included); the
    estimate sees the gathered global batch; evaluation reads the users' test histories."""
    from cbns.data.history import HistoryContext

    config = toy_config(HISTORY_CASE)
    data = toy_data()
    model, objective = assemble(config, data)
    contexts = HistoryContext(data, config.model.max_history)
    single = Trainer(config, data, model, objective, progress=False, verbose=False, contexts=contexts)
    want = [single.step(single.train_pairs[rows], contexts.for_pairs(torch.tensor(rows))) for rows, _ in HISTORY_STEPS]
    ranks = [r["history"] for r in two_ranks]
    _assert_ranks_match_one_process(ranks, HISTORY_STEPS, want, model)
    assert int(objective.frequency.step) == len(HISTORY_STEPS)
    for name in ("frequency.last_seen", "frequency.gap", "bank.logq", "bank.ids"):
        for r in ranks:
            assert torch.allclose(r["objective"][name].double(), objective.state_dict()[name].double(), atol=1e-6), name
    want_metrics = evaluate_split(model, data, "test", [2, 5], user_context=contexts.for_users("test"))
    for r in ranks:
        assert all(abs(r["metrics"][k] - want_metrics[k]) < 1e-6 for k in want_metrics), (r["metrics"], want_metrics)
