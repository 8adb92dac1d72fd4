"""The CUDA test's data-parallel steps (tests/sparse_data_parallel.py) in two gloo processes on
the CPU: both ranks end with the same weights, the weights one process reaches on the
concatenated batches."""
import os

import pytest
import torch
import torch.multiprocessing as mp
from sparse_data_parallel import GLOBAL_BATCHES, free_port, train_steps

from cbns.distributed import init_distributed
from cbns.distributed.context import DistContext


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    ctx = init_distributed()
    try:
        mine = [rows[4 * rank: 4 * rank + 4] for rows in GLOBAL_BATCHES]
        weights, losses = train_steps(ctx, torch.device("cpu"), mine)
        torch.save({"weights": weights, "losses": losses}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse-dp")
    mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_two_gloo_ranks_with_sparse_tables_take_one_process_steps(ranks):
    weights, losses = train_steps(DistContext(), torch.device("cpu"), GLOBAL_BATCHES)
    start, _ = train_steps(DistContext(), torch.device("cpu"), [])
    for name, value in weights.items():
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
        assert torch.allclose(ranks[0]["weights"][name], value, rtol=0, atol=2e-6), name
    moved = [n for n, v in weights.items() if v.is_floating_point() and not torch.equal(v, start[n])]
    # the tables (the user tower's item table, the item tower's, the bias) and the dense MLP
    assert {"user_tower.items.weight", "item_tower.embedding.weight", "item_bias",
            "user_tower.mlp.0.weight"} <= set(moved), moved
    for step, want in enumerate(losses):  # equal halves: the global mean is the ranks' mean
        assert abs((ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2 - want) < 1e-5, step
