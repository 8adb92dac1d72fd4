"""On a GPU: CPU/GPU agreement of the loss and its gradients, every buffer on the device, exact
resume on the device, and a one-process NCCL group through the distributed path (the data-parallel
steps of tests/sparse_data_parallel.py, which tests/distributed runs in two gloo processes).
Skipped cleanly where CUDA is not available."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cbns
from cbns.api import assemble
from cbns.data.interactions import Interactions
from cbns.training.trainer import Trainer
from cbns.training.training_state import load_training_state, training_state

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda", 0)  # a process group's device_id needs the index


def toy_data(num_users=60, num_items=40, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, num_users, 600), rng.integers(0, num_items, 600)], 1)
    pairs = np.unique(pairs, axis=0)
    return Interactions("toy", num_users, num_items, train=pairs[:450], test=pairs[450:])


def case(seed=0, batch=64, dim=16, num_ids=30):
    g = torch.Generator().manual_seed(seed)
    users = F.normalize(torch.randn(batch, dim, generator=g), dim=1)
    items = F.normalize(torch.randn(batch, dim, generator=g), dim=1)
    ids = torch.randint(0, num_ids, (batch,), generator=g)
    return users, items, ids


@pytest.mark.parametrize("item_side", ["joint", "split"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_and_gpu_losses_and_gradients_agree(item_side, precision):
    counts = np.arange(1, 31)
    results = []
    for device in ("cpu", "cuda"):
        criterion = cbns.CrossBatchSoftmaxLoss(16, 128, item_counts=counts, item_side=item_side,
                                               precision=precision).to(device)
        bias = torch.linspace(-0.3, 0.3, 30, device=device, requires_grad=True)
        out = []
        for step in range(3):
            users, items, ids = (x.to(device) for x in case(step))
            users.requires_grad_()
            items.requires_grad_()
            loss = criterion(users, items, ids, item_bias=bias)
            loss.backward()
            out.append((loss.detach().cpu(), users.grad.cpu(), items.grad.cpu()))
        results.append((out, bias.grad.cpu()))
    tol = dict(rtol=1e-4, atol=1e-6) if precision == "fp32" else dict(rtol=2e-2, atol=2e-3)
    for (a_loss, a_u, a_i), (b_loss, b_u, b_i) in zip(results[0][0], results[1][0]):
        assert torch.allclose(a_loss, b_loss, **tol)
        assert torch.allclose(a_u, b_u, **tol) and torch.allclose(a_i, b_i, **tol)
    assert torch.allclose(results[0][1], results[1][1], **tol)


@pytest.mark.parametrize("sampler", ["cbns", "uniform", "mns"])
def test_every_buffer_and_generator_is_on_the_device(sampler):
    data = toy_data()
    config = cbns.TrainConfig(data="toy", sampler=sampler, device="cuda", dim=8, batch_size=32, memory_size=64,
                              num_negatives=16, epochs=1).validate()
    model, objective = assemble(config, data)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False)
    trainer.step(trainer.train_pairs[:32])
    for name, tensor in [*model.named_parameters(), *model.named_buffers(), *objective.named_buffers()]:
        assert tensor.device.type == "cuda", name
    assert trainer.train_pairs.device.type == "cuda"
    sampler_module = getattr(objective, "sampler", None)
    if sampler_module is not None:
        assert sampler_module.generator.device.type == "cuda"


def test_resume_on_the_device_is_exact():
    data = toy_data()
    config = cbns.TrainConfig(data="toy", sampler="cbns", device="cuda", dim=8, batch_size=32, memory_size=64,
                              epochs=2, lr_schedule="constant").validate()
    torch.manual_seed(0)
    a = Trainer(config, data, *assemble(config, data), progress=False, verbose=False)
    batches = [a.train_pairs[torch.randperm(len(a.train_pairs), device="cuda")[:32]] for _ in range(8)]
    for batch in batches[:4]:
        a.step(batch)
    state = {k: v for k, v in training_state(a).items()}
    b = Trainer(config, data, *assemble(config, data), progress=False, verbose=False)
    load_training_state(b, state)
    for batch in batches[4:]:
        assert torch.equal(a.step(batch), b.step(batch))
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_one_process_nccl_group_through_the_distributed_path(tmp_path):
    import torch.distributed as dist

    from cbns.distributed.gather import all_gather_rows, gather_batch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=CUDA)
    try:
        users, items, ids = (x.to(CUDA) for x in case(1))
        gathered = all_gather_rows(ids, [len(ids)], 0)
        assert torch.equal(gathered, ids)
        pool = gather_batch(items, ids, True)
        assert pool.counts == [len(ids)] and torch.equal(pool.ids, ids)
        counts = np.arange(1, 31)
        alone = cbns.CrossBatchSoftmaxLoss(16, 64, item_counts=counts).to(CUDA)
        together = cbns.CrossBatchSoftmaxLoss(16, 64, item_counts=counts, gather_across_ranks=True).to(CUDA)
        assert torch.allclose(alone(users, items, ids), together(users, items, ids))
        tensor = torch.ones(3, device=CUDA)
        dist.all_reduce(tensor)
        assert tensor.tolist() == [1.0, 1.0, 1.0]
        # The towers as the trainer wraps them: DDP (NCCL bucket all-reduce in backward) for the
        # dense MLP only; the tables' row-sparse gradients, which NCCL cannot all-reduce, averaged
        # by all-gather. The same steps on the CPU: tests/distributed/test_sparse_data_parallel.py.
        from sparse_data_parallel import GLOBAL_BATCHES, train_steps

        from cbns.distributed.context import DistContext

        ctx = DistContext(rank=0, world_size=1, device=CUDA, group=dist.group.WORLD)
        on_gpu, gpu_losses = train_steps(ctx, CUDA, GLOBAL_BATCHES)
        on_cpu, cpu_losses = train_steps(DistContext(), torch.device("cpu"), GLOBAL_BATCHES)
        assert np.allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-6)
        for name, value in on_cpu.items():
            assert torch.allclose(on_gpu[name], value, rtol=1e-4, atol=1e-5), name
    finally:
        dist.destroy_process_group()
