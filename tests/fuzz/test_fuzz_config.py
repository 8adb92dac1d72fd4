"""Property-based fuzzing of the YAML config parser and the ``cbns train`` flags.

The oracle restates the documented option rules (types, ranges) independently of
cbns/config/; every generated config must either be rejected with a one-line
:class:`CbnsError` (or argparse's one-line exit 2) or accepted with exactly the given values.
Run longer with ``CBNS_FUZZ_EXAMPLES=20000`` (see docs/resume.md).
"""
import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

from cbns.cli import build_parser
from cbns.cli.options import flag_name
from cbns.cli.train_cmd import config_from_args
from cbns.config import TrainConfig, build_config, load_yaml
from cbns.errors import CbnsError

BIG = 2**31 - 1
#: name -> (type, rule); the documented constraints, restated.
RULES = {
    "data": ("str", lambda v: v != ""),
    "sampler": ("str", lambda v: v in ("auto", "inbatch", "uniform", "popularity", "mns", "cbns", "full")),
    "batch_size": ("int", lambda v: 1 <= v <= BIG),
    "memory_size": ("int", lambda v: 0 <= v <= BIG),
    "warmup_steps": ("int", lambda v: 0 <= v <= BIG),
    "bank_mode": ("str", lambda v: v in ("stale", "refresh")),
    "item_side": ("str", lambda v: v in ("auto", "joint", "split")),
    "num_negatives": ("int", lambda v: 1 <= v <= BIG),
    "popularity_alpha": ("float", math.isfinite),
    "dim": ("int", lambda v: 1 <= v <= BIG),
    "normalize": ("bool", lambda v: True),
    "temperature": ("float", lambda v: math.isfinite(v) and v > 0),
    "logq_correction": ("bool", lambda v: True),
    "init_std": ("float", lambda v: math.isfinite(v) and v >= 0),
    "epochs": ("int", lambda v: 1 <= v <= BIG),
    "lr": ("float", lambda v: math.isfinite(v) and v > 0),
    "weight_decay": ("float", lambda v: math.isfinite(v) and v >= 0),
    "seed": ("int", lambda v: 0 <= v <= 2**62),
    "valid_fraction": ("float", lambda v: math.isfinite(v) and 0 <= v < 1),
    "eval_every": ("int", lambda v: 1 <= v <= BIG),
    "patience": ("int", lambda v: 0 <= v <= BIG),
    "ks": ("list", lambda v: len(v) > 0 and all(1 <= k <= BIG for k in v)),
    "threads": ("int", lambda v: 0 <= v <= BIG),
    "checkpoint_every": ("int", lambda v: 0 <= v <= BIG),
    "drift_every": ("int", lambda v: 0 <= v <= BIG),
    "drift_sample": ("int", lambda v: 1 <= v <= BIG),
    "drift_deltas": ("list", lambda v: len(v) > 0 and all(1 <= k <= BIG for k in v)),
}
#: The defaults are data, not rules: taken from the dataclass so that a tuned default does not
#: break the oracle (the rules above still have to accept them).
DEFAULTS = TrainConfig().to_dict()


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def oracle(options: dict):
    """The config these options make, as a dict, or None if they must be rejected."""
    merged = dict(DEFAULTS)
    for name, value in options.items():
        if not isinstance(name, str) or name not in RULES:
            return None
        kind = RULES[name][0]
        ok = {"int": is_int(value), "float": is_int(value) or isinstance(value, float),
              "bool": isinstance(value, bool), "str": isinstance(value, str),
              "list": isinstance(value, list) and all(is_int(k) for k in value)}[kind]
        if not ok:
            return None
        if kind == "float":
            try:
                value = float(value)
            except OverflowError:
                return None
        merged[name] = value
    if not all(rule(merged[name]) for name, (_, rule) in RULES.items()):
        return None
    return merged


INTS = st.one_of(st.integers(-3, 5000), st.sampled_from([0, -1, BIG, BIG + 1, 2**62, 2**62 + 1, 2**80]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1e-3, 0.5, 0.999, 1.0, -0.1]))
WRONG = st.sampled_from([None, "3", "0.1", True, [1], {"a": 1}, 1.5, "yes", []])
VALUE_FOR = {
    "int": st.one_of(INTS, INTS, WRONG),
    "float": st.one_of(FLOATS, INTS, WRONG),
    "bool": st.one_of(st.booleans(), WRONG, st.sampled_from([0, 1, "true"])),
    "str": st.one_of(st.sampled_from(["inbatch", "uniform", "cbns", "stale", "refresh", "joint", "split", "gowalla",
                                      "", "CBNS", "x"]), st.text(max_size=5), WRONG),
    "list": st.one_of(st.lists(INTS, max_size=3), WRONG, st.just([20, 50]), st.just([1.5]), st.just("20,50")),
}


@st.composite
def option_maps(draw):
    names = draw(st.lists(st.sampled_from(sorted(RULES)) if draw(st.integers(0, 5)) else st.sampled_from(
        ["memory_sizee", "LR", "lr ", "1", "", "batch-size", "extra"]), max_size=6, unique=True))
    return {name: draw(VALUE_FOR[RULES[name][0]]) if name in RULES else draw(st.integers()) for name in names}


def load_text(text: str):
    """(TrainConfig, None) or (None, message) from YAML text, through the file loader."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return build_config(load_yaml(path), {}), None
        except CbnsError as exc:
            assert "\n" not in str(exc), f"not one line: {exc}"
            return None, str(exc)


def check(expected, config, message):
    if expected is None:
        assert config is None, f"accepted an invalid config: {config}"
        event("rejected")
    else:
        assert config is not None, f"rejected a valid config: {message}"
        assert config.to_dict() == expected
        event("accepted")


@fuzz_settings()
@given(options=option_maps())
def test_fuzz_yaml_options(options):
    text = yaml.safe_dump(options, allow_unicode=True)
    config, message = load_text(text)
    check(oracle(options), config, message)


YAML_TOKENS = ["lr", "batch_size", "sampler", "ks", ":", ": ", " ", "\n", "\n  ", "- ", "[", "]", "{", "}", ",",
               "0.1", "2048", "-1", ".nan", ".inf", "~", "null", "true", "cbns", "&a ", "*a", "!!str ", "!!python/x ",
               "'", '"', "#", "\t", "?", "|", ">", "%YAML 1.1\n", "---\n", "...", "\x00", "é", "1e3", "0x10", "1_0"]


@st.composite
def yaml_texts(draw):
    """Random YAML-ish text, or a well-formed config file with random tokens spliced in."""
    if draw(st.booleans()):
        return "".join(draw(st.lists(st.sampled_from(YAML_TOKENS), max_size=25)))
    text = yaml.safe_dump(draw(option_maps()), allow_unicode=True)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(YAML_TOKENS)) + text[at:]
    return text


class ExponentFloats(yaml.SafeLoader):
    """The documented reading of a config file: PyYAML's safe schema, plus YAML 1.2's floats in
    exponent form without a point (``1e3``, ``-2E-1``), which YAML 1.1 reads as text."""


ExponentFloats.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?\d[\d_]*(\.[\d_]*)?[eE][-+]?\d+$"),
                                     list("+-0123456789"))


@fuzz_settings()
@given(text=yaml_texts(), duplicate=st.booleans())
def test_fuzz_yaml_text(text, duplicate):
    """YAML-ish text: rejected in one line, or read exactly as PyYAML reads it (with no key twice)."""
    if duplicate:
        text = "lr: 0.1\n" + text + "\nlr: 0.2\n"
    config, message = load_text(text)
    loaded = None
    try:
        loaded = yaml.load(text, Loader=ExponentFloats)
        root = yaml.compose(text, Loader=ExponentFloats)
    except (yaml.YAMLError, RecursionError):
        expected = None
    else:
        keys = [k.value for k, _ in root.value] if isinstance(root, yaml.MappingNode) else []
        if loaded is None:
            expected = oracle({})
        elif not isinstance(loaded, dict) or len(keys) != len(set(keys)) or "<<" in keys:
            expected = None  # not a mapping, or a key given twice (PyYAML would keep the last)
        else:
            expected = oracle(loaded)
    if expected is None and config is None and duplicate and isinstance(loaded, dict):
        assert "given twice" in message, message
    check(expected, config, message)


FLAG_VALUES = ["0", "1", "-1", "2048", "0.5", "1e-3", "nan", "inf", "-inf", "abc", "", " 3", "2147483648",
               "true", "no", "20,50", "20,,50", "0,5", "cbns", "refresh", "joint", "gowalla", "1_000"]


@fuzz_settings()
@given(pairs=st.lists(st.tuples(st.sampled_from(sorted(RULES)), st.sampled_from(FLAG_VALUES)), max_size=5))
def test_fuzz_train_flags(pairs):
    """Flags: argparse rejects what it cannot convert (exit 2, one line); the rest is range-checked."""
    argv = ["train"]
    for name, value in pairs:
        argv += ["--" + name.replace("_", "-"), value]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2 and err.getvalue().startswith("cbns: error:") and err.getvalue().count("\n") == 1
        event("argparse")
        return
    converted = {}
    for name, value in pairs:  # last one wins, as in argparse
        kind = RULES[name][0]
        converted[name] = {"int": int, "float": float, "str": str,
                           "bool": lambda v: v.lower() in ("1", "true", "yes", "on"),
                           "list": lambda v: [int(k) for k in v.split(",")]}[kind](value)
    try:
        config, message = config_from_args(args), None
    except CbnsError as exc:
        assert "\n" not in str(exc)
        config, message = None, str(exc)
    check(oracle(converted), config, message)


@pytest.mark.parametrize("text,message", [
    ("lr: 0.1\nlr: 0.2\n", r"c.yaml:2: option 'lr' given twice \(first on line 1\)"),
    ("batch_size: 0\n", r"c.yaml:1: option batch_size must be >= 1, got 0"),
    ("epochs: 3\nlr: .nan\n", r"c.yaml:2: option lr must be a finite number, got nan"),
    ("seed: -1\n", r"c.yaml:1: option seed must be >= 0, got -1"),
    ("dim: 3000000000\n", r"c.yaml:1: option dim must be <= 2147483647, got 3000000000"),
    ("memory_sise: 5\n", r"c.yaml:1: unknown option 'memory_sise'; did you mean 'memory_size'\?"),
    ("- 1\n- 2\n", r"c.yaml: expected a mapping of option: value, got list"),
])
def test_config_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CbnsError, match=message):
        build_config(load_yaml(path), {})


def test_flag_beats_file_so_the_error_names_the_flag(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 0\n")
    with pytest.raises(CbnsError, match=r"^option batch_size: must be >= 1, got -3$") as caught:
        build_config(load_yaml(path), {"batch_size": -3})
    assert caught.value.render(flag=flag_name) == "--batch-size: must be >= 1, got -3"
    assert build_config(load_yaml(path), {"batch_size": 64}).sampler.batch_size == 64


def test_config_from_python_with_a_wrong_type_is_a_cbns_error():
    with pytest.raises(CbnsError, match="^option batch_size must be int, got 'big'$") as caught:
        TrainConfig(batch_size="big").validate()
    assert caught.value.render(flag=flag_name) == "--batch-size: option batch_size must be int, got 'big'"
