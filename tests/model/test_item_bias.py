"""The learned item bias: its gradient in both loss paths against a hand-written softmax gradient,
its place in the ranking vectors, and what training does with it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_tiny_lightgcn

from cbns.model.popularity_prior import prior_column
from cbns.model.towers.id_tower import IdTower
from cbns.model.two_tower import TwoTower
from cbns.negatives.candidates import Candidates
from cbns.objective.loss import SampledSoftmaxLoss

T = 0.2


def softmax_bias_gradient(users, cand, cand_ids, logq, bias, pos_ids, target, num_items):
    """d loss / d bias by hand: with P the softmax over every (hit-masked) column and Y the
    one-hot target, column j gets mean_i (P - Y)[i, j], and the item bias of id k the sum over
    the columns holding k."""
    logits = users @ cand.T / T - logq[cand_ids] + bias[cand_ids] / T
    hit = pos_ids[:, None] == cand_ids[None, :]
    hit[torch.arange(len(pos_ids)), target] = False
    probs = torch.softmax(logits.masked_fill(hit, -1e9), dim=1)
    probs[torch.arange(len(pos_ids)), target] -= 1
    per_column = probs.sum(0) / len(pos_ids) / T
    return torch.zeros(num_items, dtype=users.dtype).index_add_(0, cand_ids, per_column)


def make(seed, batch=6, bank=5, num_items=9):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(batch, 4, generator=g, dtype=torch.float64)
    table = torch.randn(num_items, 4, generator=g, dtype=torch.float64)
    pos_ids = torch.randint(0, num_items, (batch,), generator=g)
    bank_ids = torch.randint(0, num_items, (bank,), generator=g)
    logq = -1 - 3 * torch.rand(num_items, generator=g, dtype=torch.float64)
    bias = 0.3 * torch.randn(num_items, generator=g, dtype=torch.float64)
    return users, table, pos_ids, bank_ids, logq, bias


@pytest.mark.parametrize("item_side", ["joint", "split"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_path_bias_gradient_is_the_full_softmax_gradient(item_side, seed):
    users, table, pos_ids, bank_ids, logq, bias0 = make(seed)
    bias = bias0.clone().requires_grad_()
    sources = [Candidates(table[pos_ids], pos_ids, logq[pos_ids], "inbatch", holds_positives=True),
               Candidates(table[bank_ids], bank_ids, logq[bank_ids], "bank", item_grad=False)]
    loss = SampledSoftmaxLoss(T, True, item_side)(users, table[pos_ids], pos_ids, logq[pos_ids], sources, bias)
    loss.backward()
    cand_ids = torch.cat([pos_ids, bank_ids])
    want = softmax_bias_gradient(users, table[cand_ids], cand_ids, logq, bias0, pos_ids,
                                 torch.arange(len(pos_ids)), len(table))
    assert torch.allclose(bias.grad, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("item_side", ["joint", "split"])
def test_plain_path_bias_gradient_is_the_full_softmax_gradient(item_side):
    # Uniform negatives: the positive is column 0, then the drawn items; half of them frozen so
    # that split takes its two-cross-entropy form.
    users, table, pos_ids, neg_ids, logq, bias0 = make(3, bank=7)
    bias = bias0.clone().requires_grad_()
    sources = [Candidates(table[neg_ids[:4]], neg_ids[:4], logq[neg_ids[:4]], "uniform"),
               Candidates(table[neg_ids[4:]], neg_ids[4:], logq[neg_ids[4:]], "bank", item_grad=False)]
    loss = SampledSoftmaxLoss(T, True, item_side)(users, table[pos_ids], pos_ids, logq[pos_ids], sources, bias)
    loss.backward()
    # Reference columns: each row's own positive first, then the negatives (computed per row).
    want = torch.zeros_like(bias0)
    for i in range(len(pos_ids)):
        ids = torch.cat([pos_ids[i:i + 1], neg_ids])
        want += softmax_bias_gradient(users[i:i + 1], table[ids], ids, logq, bias0, pos_ids[i:i + 1],
                                      torch.tensor([0]), len(table)) / len(pos_ids)
    assert torch.allclose(bias.grad, want, rtol=1e-9, atol=1e-12)


def test_bias_shifts_the_logits_by_b_over_t_also_without_logq_correction():
    users, table, pos_ids, bank_ids, logq, bias = make(4)
    sources = [Candidates(table[pos_ids], pos_ids, logq[pos_ids], "inbatch", holds_positives=True)]
    got = SampledSoftmaxLoss(T, False, "joint")(users, table[pos_ids], pos_ids, logq[pos_ids], sources, bias)
    logits = users @ table[pos_ids].T / T + bias[pos_ids] / T
    hit = pos_ids[:, None] == pos_ids[None, :]
    hit.fill_diagonal_(False)
    want = F.cross_entropy(logits.masked_fill(hit, -1e9), torch.arange(len(pos_ids)))
    assert torch.allclose(got, want, rtol=1e-12)


def test_ranking_vectors_add_the_bias_and_the_prior():
    torch.manual_seed(0)
    model = TwoTower(IdTower(5, 8), IdTower(7, 8), normalize=True, num_items=7, item_bias=True)
    assert "item_bias" in model.state_dict()
    with torch.no_grad():
        model.item_bias.copy_(torch.linspace(-0.3, 0.3, 7))
    counts = np.array([0, 1, 2, 5, 10, 100, 3])
    u, i = model.all_users(5), model.all_items(7)
    ru, ri = model.ranking_vectors(u, i)  # bias only: the column is there although beta = 0
    assert ru.shape == (5, 9)
    assert np.allclose((ru @ ri.T).numpy(), (u @ i.T).numpy() + np.linspace(-0.3, 0.3, 7)[None, :], atol=1e-6)
    model.set_prior(prior_column(counts, beta=0.5, temperature=0.1))
    ru, ri = model.ranking_vectors(u, i)
    want = (u @ i.T).numpy() + np.linspace(-0.3, 0.3, 7)[None, :] + 0.1 * 0.5 * np.log1p(counts)[None, :]
    assert np.allclose((ru @ ri.T).numpy(), want, atol=1e-6)
    assert "item_bias" not in TwoTower(IdTower(5, 8), IdTower(7, 8), num_items=7).state_dict()


def test_training_gives_popular_items_a_higher_bias(tmp_path):
    # Users with no preference at all (every user picks from the same skewed distribution): the
    # towers have nothing to learn, so popularity can only go into the bias. Without the logQ
    # correction in-batch negatives would already hold it, so this trains on uniform negatives.
    from cbns.api import train
    from cbns.config import TrainConfig

    rng = np.random.default_rng(0)
    num_users, num_items = 300, 40
    weights = 1.0 / np.arange(1, num_items + 1)
    lines, tests = [], []
    for u in range(num_users):
        items = rng.choice(num_items, size=10, replace=False, p=weights / weights.sum())
        lines.append(f"{u} " + " ".join(map(str, items[:9])))
        tests.append(f"{u} {items[9]}\n")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.txt").write_text("".join(tests))
    cfg = TrainConfig(data=str(tmp_path), sampler="uniform", num_negatives=20, dim=8, batch_size=64,
                      epochs=8, lr=0.05, threads=1, item_bias=True, popularity_prior="off",
                      valid_fraction=0.0)
    result = train(cfg, tmp_path / "run", progress=False)
    item_vectors = np.load(tmp_path / "run" / "item_embeddings.npy")
    bias = item_vectors[:, -1]
    counts = np.bincount(np.concatenate([np.array(line.split()[1:], dtype=int) for line in lines]),
                         minlength=num_items)
    assert item_vectors.shape[1] == 9 and result.test  # the exported column is the bias
    rho = np.corrcoef(np.argsort(np.argsort(counts)), np.argsort(np.argsort(bias)))[0, 1]
    assert rho > 0.8, rho


def _run_without_bias(tmp_path):
    """A one-epoch in-batch run without the bias on 40 random users of 30 items: (run dir, result)."""
    from cbns.api import train
    from cbns.config import TrainConfig

    write_tiny_lightgcn(tmp_path, seed=1)
    result = train(TrainConfig(data=str(tmp_path), sampler="inbatch", dim=4, batch_size=32, epochs=1, threads=1,
                               item_bias=False, popularity_prior="off"), tmp_path / "run", progress=False)
    return tmp_path / "run", result


def test_a_run_saved_before_the_option_existed_is_read_without_the_bias(tmp_path):
    # A config.yaml without the item_bias key was written before the option existed: the run
    # trained without a bias, so it must be rebuilt without one (today's default is on).
    import yaml

    from cbns.api import evaluate_run
    from cbns.config import TrainConfig
    from cbns.runs.run_dir import load_run_config

    assert TrainConfig().model.item_bias
    run, result = _run_without_bias(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["item_bias"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert load_run_config(run).model.item_bias is False
    assert evaluate_run(run)["test"]["recall@20"] == pytest.approx(result.test["recall@20"])


def test_evaluating_the_model_file_of_another_model_is_one_line(tmp_path):
    from cbns.api import evaluate_run
    from cbns.errors import CbnsError

    run, _ = _run_without_bias(tmp_path)
    text = (run / "config.yaml").read_text().replace("item_bias: false", "item_bias: true")
    (run / "config.yaml").write_text(text)
    with pytest.raises(CbnsError, match=r"model.pt: does not fit the model of .*config.yaml \(.*item_bias"):
        evaluate_run(run)
