"""The recipe's decisions from the data and the towers, against the rules stated in its docstring."""
import pytest

import cbns
from cbns.training.recipe import leaves_to_recipe, resolve


@pytest.mark.parametrize("items,batch,memory", [(40_981, 2048, 4096), (1_682, 2048, 4096), (6_144, 2048, 4096)])
def test_auto_sampler_is_cbns_even_when_batch_and_bank_cover_the_catalogue(items, batch, memory):
    assert cbns.TrainConfig().sampler.name == "cbns"
    config = cbns.TrainConfig(sampler="auto", batch_size=batch, memory_size=memory).validate()
    resolved, notes = resolve(config, items, 100_000)
    assert resolved.sampler.name == "cbns" and resolved.sampler.memory_size == memory
    assert any(n.startswith("sampler cbns: auto") for n in notes)


@pytest.mark.parametrize("user,item,want", [("id", "id", "joint"), ("id", "features", "split"),
                                            ("gru", "id", "split"), ("pooled", "id", "split")])
def test_auto_item_side_is_joint_when_both_towers_are_id_tables_only(user, item, want):
    resolved, notes = resolve(cbns.TrainConfig(user_tower=user, item_tower=item).validate(), 40_981, 100_000)
    assert resolved.loss.item_side == want
    assert any(n.startswith(f"item side {want}: ") for n in notes)


def test_a_callers_own_item_tower_is_an_id_table_only_if_it_says_so():
    from torch import nn

    config = cbns.TrainConfig().validate()  # item_tower "id" named, but the caller's tower replaces it
    assert resolve(config, 40_981, 100_000, item_tower=nn.Linear(4, 4))[0].loss.item_side == "split"
    table = nn.Embedding(10, 4)
    table.id_table = True
    assert resolve(config, 40_981, 100_000, item_tower=table)[0].loss.item_side == "joint"
    assert resolve(config, 40_981, 100_000, item_tower=table, user_tower=nn.GRU(4, 4))[0].loss.item_side == "split"


def test_explicit_choices_are_kept_and_resolution_is_idempotent():
    config = cbns.TrainConfig(sampler="cbns", item_side="split", batch_size=2048, memory_size=4096).validate()
    resolved, notes = resolve(config, 100, 1000)  # a tiny catalogue, but the user chose cbns
    assert resolved is config and notes == []
    once, _ = resolve(cbns.TrainConfig(min_steps=1000).validate(), 500, 10_000)
    twice, notes = resolve(once, 500, 10_000)
    assert twice == once and notes == []


@pytest.mark.parametrize("train,batch,epochs,min_steps,want", [
    (10_000, 1000, 10, 0, 10),      # off
    (10_000, 1000, 10, 50, 10),     # 10 epochs of 10 steps already give 100
    (10_000, 1000, 10, 500, 50),    # 500 steps of 10 a epoch
    (10_001, 1000, 10, 500, 46),    # 11 steps an epoch: ceil(500 / 11)
])
def test_min_steps_lengthens_short_epochs(train, batch, epochs, min_steps, want):
    config = cbns.TrainConfig(batch_size=batch, epochs=epochs, min_steps=min_steps).validate()
    assert resolve(config, 40_981, train)[0].training.epochs == want


def test_what_the_study_leaves_to_the_recipe():
    config = cbns.TrainConfig().validate()
    assert not leaves_to_recipe("sampler", config) and leaves_to_recipe("item_side", config)
    assert leaves_to_recipe("sampler", cbns.TrainConfig(sampler="auto").validate())
    assert leaves_to_recipe("epochs", cbns.TrainConfig(min_steps=10).validate()) is True
    assert not leaves_to_recipe("epochs", config)
