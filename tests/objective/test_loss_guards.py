"""The loss writes its state (bank, step counter, streaming estimate) only on training steps:
training mode with gradients enabled. Under ``torch.no_grad()`` and in eval mode its state_dict
stays bitwise what it was; in eval mode with gradients flowing it warns exactly once. Bad
arguments and inputs end in one TypeError/ValueError saying what was received."""
import math
import warnings

import numpy as np
import pytest
import torch

from cbns.negatives.inbatch import InBatchSource
from cbns.negatives.uniform import UniformSource
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss
from cbns.objective.full_softmax_loss import FullSoftmaxLoss
from cbns.objective.loss import SampledSoftmaxLoss
from cbns.objective.sampled_objective import SampledSoftmaxObjective

D, ITEMS = 4, 10
TABLE = torch.nn.functional.normalize(torch.randn(ITEMS, D, generator=torch.Generator().manual_seed(7)), dim=1)


def encode(ids):
    """The item tower of the drawing sources: a fixed table."""
    return TABLE[ids]


def batch(seed=0, b=5, grad=True):
    g = torch.Generator().manual_seed(seed)
    users = torch.nn.functional.normalize(torch.randn(b, D, generator=g), dim=1).requires_grad_(grad)
    items = torch.nn.functional.normalize(torch.randn(b, D, generator=g), dim=1).requires_grad_(grad)
    return users, items, torch.randint(0, ITEMS, (b,), generator=g)


def snapshot(module):
    """The state_dict, copied (a drawing source's generator state is a dict of tensors)."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else {n: x.clone() if isinstance(x, torch.Tensor) else x
                                                             for n, x in v.items()}
            for k, v in module.state_dict().items()}


def same(a, b):
    def equal(x, y):
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(equal(x[n], y[n]) for n in x)
        return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
    return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)


def losses():
    """Each kind of objective, after one real training step (so the bank is not empty)."""
    made = [CrossBatchSoftmaxLoss(D, 8, item_counts=np.arange(1, ITEMS + 1)),
            CrossBatchSoftmaxLoss(D, 8, frequency_slots=64),  # the streaming estimate
            SampledSoftmaxObjective([InBatchSource(), UniformSource(ITEMS, 3, seed=1)],
                                    item_counts=np.ones(ITEMS), dim=D)]
    for loss in made:
        loss(*batch(seed=99), encode_items=encode)
    return made


@pytest.mark.parametrize("index", range(3))
def test_no_grad_in_training_mode_changes_nothing(index):
    loss = losses()[index]
    before = snapshot(loss)
    with torch.no_grad():
        value = loss(*batch(seed=1), encode_items=encode)
    assert same(before, snapshot(loss)) and int(loss.step) == 1 and loss._steps == 1
    if hasattr(loss, "bank"):  # the validation batch's items are not in the bank: only the first batch's
        assert sorted(loss.bank.oldest_first().tolist()) == sorted(batch(seed=99)[2].tolist())
    loss.eval()  # the same value as scoring in eval mode: no_grad only stops the writes
    with torch.no_grad():
        assert torch.equal(value, loss(*batch(seed=1), encode_items=encode))  # the same draw: the generator was put back


def test_a_fresh_loss_under_no_grad_stays_at_step_zero_with_an_empty_bank():
    loss = CrossBatchSoftmaxLoss(D, 8, warmup_steps=2, item_counts=np.ones(ITEMS))
    before = snapshot(loss)
    with torch.no_grad():
        for seed in range(3):
            loss(*batch(seed=seed))
    assert int(loss.step) == 0 and len(loss.bank) == 0 and same(before, snapshot(loss))


def test_eval_mode_changes_nothing_and_warns_once_when_gradients_flow():
    loss = losses()[1]
    loss.eval()
    before = snapshot(loss)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss(*batch(seed=2)).backward()
        loss(*batch(seed=3)).backward()
        with torch.no_grad():
            loss(*batch(seed=4))
    assert same(before, snapshot(loss))
    assert len(caught) == 1 and "eval mode" in str(caught[0].message) and "not" in str(caught[0].message)


@pytest.mark.parametrize("context", ["no_grad", "no_input_grad", "training"])
def test_no_warning_without_gradients_in_eval_or_in_training(context):
    loss = CrossBatchSoftmaxLoss(D, 8, item_counts=np.ones(ITEMS))
    if context != "training":
        loss.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if context == "no_grad":
            with torch.no_grad():
                loss(*batch())
        else:
            loss(*batch(grad=context == "training"))
    assert int(loss.step) == (1 if context == "training" else 0)


def test_a_training_step_still_enqueues_and_counts():
    loss = CrossBatchSoftmaxLoss(D, 8, item_counts=np.ones(ITEMS))
    users, items, ids = batch(seed=5)
    loss(users, items, ids).backward()
    assert int(loss.step) == 1 and loss.bank.oldest_first().tolist() == ids.tolist()


@pytest.mark.parametrize("value, error", [(math.nan, ValueError), (math.inf, ValueError), (0.0, ValueError),
                                          (-0.1, ValueError), ("0.1", TypeError), (True, TypeError),
                                          (None, TypeError)])
def test_temperature_must_be_finite_and_positive(value, error):
    for build in (lambda: CrossBatchSoftmaxLoss(D, 8, temperature=value),
                  lambda: SampledSoftmaxLoss(temperature=value),
                  lambda: FullSoftmaxLoss(ITEMS, temperature=value)):
        with pytest.raises(error, match="temperature must be a finite number > 0, got"):
            build()


@pytest.mark.parametrize("counts, error, match", [
    (np.array([1.0, np.nan, 2.0]), ValueError, r"1 NaN or infinite \(the first at index 1\)"),
    (np.array([1.0, 2.0, np.inf]), ValueError, r"1 NaN or infinite \(the first at index 2\)"),
    (np.array([3, -1, 2]), ValueError, "counts >= 0, got -1 at index 1"),
    (np.ones((2, 3)), ValueError, r"shape \(2, 3\)"),
    (np.array([]), ValueError, r"shape \(0,\)"),
    ("123", TypeError, "got str '123'"),
    (["a", "b"], TypeError, "list of <U1"),
    (np.array([True, False]), TypeError, "of bool"),
])
def test_item_counts_are_finite_non_negative_numbers(counts, error, match):
    with pytest.raises(error, match=match):
        CrossBatchSoftmaxLoss(D, 8, item_counts=counts)


def test_counts_as_a_list_or_a_tensor_give_the_same_loss_as_an_array():
    users, items, ids = batch(seed=6)
    values = [CrossBatchSoftmaxLoss(D, 0, item_counts=c).eval()(users.detach(), items.detach(), ids)
              for c in (np.arange(1, ITEMS + 1), list(range(1, ITEMS + 1)), torch.arange(1, ITEMS + 1))]
    assert torch.equal(values[0], values[1]) and torch.equal(values[0], values[2])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dim": "64"}, TypeError, "dim must be an integer >= 1, got str '64'"),
    ({"dim": 0}, ValueError, "dim must be an integer >= 1, got 0"),
    ({"dim": 4.0}, TypeError, "dim must be an integer >= 1, got float"),
    ({"memory_size": -1}, ValueError, "memory_size must be an integer >= 0, got -1"),
    ({"memory_size": True}, TypeError, "memory_size must be an integer >= 0, got bool"),
    ({"warmup_steps": 1.5}, TypeError, "warmup_steps must be an integer >= 0, got float"),
    ({"warmup_steps": -2}, ValueError, "warmup_steps must be an integer >= 0, got -2"),
    ({"frequency_slots": 0}, ValueError, "frequency_slots must be an integer >= 1, got 0"),
    ({"frequency_alpha": math.nan}, ValueError, "alpha must be in"),
    ({"item_side": "auto"}, ValueError, "'joint' for two ID tables, 'split' otherwise"),
    ({"item_side": ["split"]}, ValueError, "item_side must be one of joint, split, got \\['split'\\]"),
])
def test_numeric_arguments_are_checked_like_the_command_line(kwargs, error, match):
    args = {"dim": D, "memory_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        CrossBatchSoftmaxLoss(args.pop("dim"), args.pop("memory_size"), **args)


def test_numpy_integers_are_integers():
    loss = CrossBatchSoftmaxLoss(np.int64(D), np.int32(8), warmup_steps=np.int64(1))
    assert loss.dim == D and loss.bank.size == 8 and loss.warmup_steps == 1
    assert type(loss.dim) is int and type(loss.warmup_steps) is int


@pytest.mark.parametrize("change, error, match", [
    ({"user_emb": [[0.0] * D] * 5}, TypeError, "user_emb must be a torch.Tensor .B, D. of floats, got list"),
    ({"item_emb": np.zeros((5, D))}, TypeError, r"item_emb must be a torch.Tensor .B, D. of floats, got ndarray of "
                                                r"shape \(5, 4\)"),
    ({"user_emb": torch.ones(5, D, dtype=torch.long)}, TypeError, "user_emb must hold floating-point vectors, got "
                                                                  "a torch.int64 tensor"),
    ({"item_ids": [1, 2, 3, 4, 5]}, TypeError, "item_ids must be a torch.Tensor .B. of int64 ids, got list"),
    ({"item_ids": "12345"}, TypeError, "item_ids must be a torch.Tensor .B. of int64 ids, got str '12345'"),
    ({"item_bias": torch.zeros(ITEMS - 1)}, ValueError, r"item_bias must be \[10\] .one per item of item_counts., "
                                                         r"got shape \(9,\)"),
    ({"item_bias": torch.zeros(ITEMS, 1)}, ValueError, r"got shape \(10, 1\)"),
    ({"item_bias": [0.0] * ITEMS}, TypeError, "item_bias must be None, a torch.Tensor .I. or a lookup"),
])
def test_wrong_inputs_are_one_error_saying_what_was_received(change, error, match):
    users, items, ids = batch()
    call = {"user_emb": users, "item_emb": items, "item_ids": ids, "item_bias": None, **change}
    loss = CrossBatchSoftmaxLoss(D, 8, item_counts=np.ones(ITEMS))
    before = snapshot(loss)
    with pytest.raises(error, match=match):
        loss(call["user_emb"], call["item_emb"], call["item_ids"], item_bias=call["item_bias"])
    assert same(before, snapshot(loss))


def test_a_short_bias_under_the_streaming_estimate_is_a_value_error_not_an_index_error():
    users, items, _ = batch()
    ids = torch.tensor([0, 1, 2, 3, 7])
    loss = CrossBatchSoftmaxLoss(D, 8)  # no counts: the bias's length is only known from the ids
    with pytest.raises(ValueError, match="item_bias has 5 entries, got item ids up to 7"):
        loss(users, items, ids, item_bias=torch.zeros(5))
    assert int(loss.step) == 0


def test_the_loss_and_the_config_share_their_defaults():
    """Every keyword default of the loss equals the config's default of the option it stands for,
    except the ones a loss cannot know (docs/library.md's table says why)."""
    import inspect

    from cbns.config import TrainConfig

    same_as = {"memory_size": "memory_size", "warmup_steps": "warmup_steps", "temperature": "temperature",
               "logq_correction": "logq_correction", "bank_mode": "bank_mode", "frequency_slots": "frequency_slots",
               "frequency_alpha": "frequency_alpha", "precision": "precision"}
    params = inspect.signature(CrossBatchSoftmaxLoss).parameters
    for argument, option in same_as.items():
        assert params[argument].default == TrainConfig.default(option), argument
    # the exceptions: dim is required, item_side is the config's auto without the towers, no counts = streaming
    assert params["dim"].default is inspect.Parameter.empty
    assert params["item_side"].default == "split" and TrainConfig.default("item_side") == "auto"
    assert params["item_counts"].default is None and TrainConfig.default("item_frequency") == "static"
    assert CrossBatchSoftmaxLoss(D).memory_size == 4096


@pytest.mark.parametrize("sources, loss, match", [
    (InBatchSource(), None, "sources must be a list of negative sources, got InBatchSource"),
    ("inbatch", None, "sources must be a list of negative sources, got str"),
    ([InBatchSource(), "uniform"], None, "sources must be NegativeSource modules .cbns.negatives., got str"),
    ([InBatchSource()], 0.1, "loss must be a cbns.objective.loss.SampledSoftmaxLoss, got float"),
])
def test_an_objective_of_the_wrong_parts_is_one_type_error(sources, loss, match):
    with pytest.raises(TypeError, match=match):
        SampledSoftmaxObjective(sources, loss)
