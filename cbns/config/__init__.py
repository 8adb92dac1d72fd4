"""The training configuration: :class:`TrainConfig`, its options' metadata, YAML files."""
from cbns.config.train_config import LEGACY_VALUES, TrainConfig, build_config, check_option, load_yaml, save_yaml
from cbns.config.yaml_file import FileOptions
from cbns.errors import OptionError

__all__ = ["FileOptions", "LEGACY_VALUES", "OptionError", "TrainConfig", "build_config", "check_option",
           "load_yaml", "save_yaml"]
