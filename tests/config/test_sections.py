"""TrainConfig in typed sections: flat names for flags, files and saved runs; sections for code."""
from __future__ import annotations

import pytest

from cbns.config import (
    SECTIONS,
    DataConfig,
    SamplerConfig,
    TrainConfig,
    TrainingConfig,
    build_config,
    load_yaml,
    save_yaml,
)
from cbns.errors import CbnsError

#: The flat option names a run directory's config.yaml holds (as written by cbns 0.2.0, plus `compile`).
FLAT_NAMES = {
    "data", "min_rating", "user_column", "item_column", "rating_column", "time_column", "sampler", "batch_size",
    "memory_size", "warmup_steps", "bank_mode", "item_side", "num_negatives", "popularity_alpha", "dim", "normalize",
    "temperature", "logq_correction", "popularity_prior", "item_bias", "init_std", "epochs", "min_steps", "lr",
    "lr_schedule", "weight_decay", "sparse_updates", "seed", "valid_fraction", "eval_every", "patience", "eval_users",
    "test_users", "eval_index", "ks", "threads", "device", "precision", "checkpoint_every", "drift_every",
    "drift_sample", "drift_deltas", "split", "user_tower", "item_tower", "max_history", "pool_decay", "hidden_dim",
    "dropout", "item_frequency", "frequency_slots", "frequency_alpha", "user_features", "user_feature_columns",
    "item_features", "item_feature_columns", "compile"}


def test_flat_names_land_in_their_sections():
    config = TrainConfig(data="ml", sampler="inbatch", batch_size=64, temperature=0.2, dim=8, epochs=3, ks=[5],
                         threads=1)
    assert config.data.source == "ml" and config.sampler.name == "inbatch" and config.sampler.batch_size == 64
    assert config.loss.temperature == 0.2 and config.model.dim == 8 and config.training.epochs == 3
    assert config.evaluation.ks == [5] and config.run.threads == 1
    assert config["data"] == "ml" and config["sampler"] == "inbatch" and config["batch_size"] == 64


def test_the_flat_names_are_those_saved_runs_hold():
    assert set(TrainConfig().to_dict()) == FLAT_NAMES == set(TrainConfig.options())


def test_whole_sections_and_flat_names_mix():
    config = TrainConfig(sampler=SamplerConfig(batch_size=512), training=TrainingConfig(epochs=2), lr=0.5)
    assert config.sampler.batch_size == 512 and config.sampler.name == "cbns"
    assert config.training.epochs == 2 and config.training.lr == 0.5


def test_a_given_section_is_copied_not_shared():
    section = DataConfig(source="a")
    config = TrainConfig(data=section)
    config.data.source = "b"
    assert section.source == "a"


def test_every_option_belongs_to_the_section_that_declares_it():
    for key, (_, spec) in TrainConfig.options().items():
        section, field = TrainConfig.section_of(key)
        assert spec.group == section and field in SECTIONS[section].__dataclass_fields__


def test_unknown_names_say_what_was_meant():
    with pytest.raises(TypeError, match="unknown option 'batchsize'; did you mean 'batch_size'"):
        TrainConfig(batchsize=3)
    with pytest.raises(AttributeError, match=r"it is config.sampler.batch_size \(or config\['batch_size'\]\)"):
        TrainConfig().batch_size  # noqa: B018
    with pytest.raises(AttributeError, match="it is config.training.epochs"):
        TrainConfig().epochs = 3
    with pytest.raises(TypeError, match="config.model must be a ModelConfig, got DataConfig"):
        TrainConfig().model = DataConfig()


def test_replace_returns_a_changed_copy_and_defaults_are_per_option():
    config = TrainConfig()
    changed = config.replace(lr=0.5, sampler="uniform")
    assert changed.training.lr == 0.5 and changed.sampler.name == "uniform"
    assert config.training.lr == TrainConfig.default("lr") == 0.01 and config.sampler.name == "cbns"
    assert changed != config and config == TrainConfig()


def test_validate_names_the_flat_option():
    with pytest.raises(CbnsError, match="option memory_size"):
        TrainConfig(memory_size=-5).validate()
    assert TrainConfig(lr=1).validate().training.lr == 1.0 and isinstance(TrainConfig(lr=1).validate().training.lr,
                                                                           float)


def test_a_saved_config_reads_back_equal(tmp_path):
    config = TrainConfig(sampler="mns", num_negatives=7, ks=[10, 20], user_feature_columns=["a"]).validate()
    save_yaml(config, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "sampler: mns" in text and "num_negatives: 7" in text  # flat names, as every version wrote them
    assert build_config(load_yaml(tmp_path / "config.yaml"), {}) == config


def test_a_file_may_group_options_under_their_section(tmp_path):
    nested = tmp_path / "nested.yaml"
    nested.write_text("sampler:\n  name: inbatch\n  batch_size: 512\ndata:\n  source: ml\nepochs: 3\n")
    flat = tmp_path / "flat.yaml"
    flat.write_text("sampler: inbatch\nbatch_size: 512\ndata: ml\nepochs: 3\n")
    assert build_config(load_yaml(nested), {}) == build_config(load_yaml(flat), {})
    assert build_config(load_yaml(nested), {}).sampler.batch_size == 512


def test_a_grouped_file_names_the_line_of_what_is_wrong(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nsampler:\n  name: cbns\n  batchsize: 3\n")
    with pytest.raises(CbnsError, match=r"c.yaml:2: section sampler has no option 'batchsize'; its options: name, "):
        load_yaml(path)
    path.write_text("sampler:\n  batch_size: 3\nbatch_size: 4\n")
    with pytest.raises(CbnsError, match=r"c.yaml:3: option batch_size given twice"):
        load_yaml(path)
    path.write_text("sampler:\n  batch_size: -3\n")
    with pytest.raises(CbnsError, match=r"c.yaml:1: option batch_size must be >= 1, got -3"):
        build_config(load_yaml(path), {})
