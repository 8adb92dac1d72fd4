"""The training configuration: :class:`TrainConfig` in typed sections, its options' metadata, YAML files."""
from cbns.config.train_config import (
    LEGACY_VALUES,
    SECTIONS,
    DataConfig,
    EvaluationConfig,
    LossConfig,
    ModelConfig,
    RunConfig,
    SamplerConfig,
    TrainConfig,
    TrainingConfig,
    build_config,
    check_option,
    load_yaml,
    save_yaml,
)
from cbns.config.yaml_file import FileOptions
from cbns.errors import OptionError

__all__ = ["LEGACY_VALUES", "SECTIONS", "DataConfig", "EvaluationConfig", "FileOptions", "LossConfig", "ModelConfig",
           "OptionError", "RunConfig", "SamplerConfig", "TrainConfig", "TrainingConfig", "build_config",
           "check_option", "load_yaml", "save_yaml"]
