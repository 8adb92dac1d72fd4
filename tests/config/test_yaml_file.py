"""Config files as users write them: YAML 1.1 booleans for word options, exponent floats."""
import pytest

from cbns.config import build_config, load_yaml
from cbns.errors import CbnsError


def config_of(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return build_config(load_yaml(path), {})


@pytest.mark.parametrize("text", ["popularity_prior: off\n", "popularity_prior: false\n", "popularity_prior: no\n",
                                  "popularity_prior: 'off'\n"])
def test_off_in_yaml_is_the_word_off(tmp_path, text):
    assert config_of(tmp_path, text).evaluation.popularity_prior == "off"


@pytest.mark.parametrize("text,option", [("popularity_prior: on\n", "popularity_prior"),
                                         ("sampler: off\n", "sampler"), ("item_side: yes\n", "item_side")])
def test_other_yaml_booleans_for_words_are_refused_with_a_hint_to_quote(tmp_path, text, option):
    with pytest.raises(CbnsError, match=rf"c.yaml:1: option {option} must be str, got the YAML boolean .*quote the word"):
        config_of(tmp_path, text)


@pytest.mark.parametrize("text,value", [("lr: 1e-2\n", 0.01), ("lr: 5E-3\n", 0.005), ("lr: 2.5e-3\n", 0.0025),
                                        ("temperature: 1e0\n", 1.0), ("lr: 0.01\n", 0.01)])
def test_exponent_numbers_are_floats(tmp_path, text, value):
    assert config_of(tmp_path, text).to_dict()[text.split(":")[0]] == value


def test_an_exponent_number_for_an_integer_option_is_refused(tmp_path):
    with pytest.raises(CbnsError, match=r"c.yaml:1: option batch_size must be int, got 1000.0"):
        config_of(tmp_path, "batch_size: 1e3\n")


def test_a_quoted_number_stays_text(tmp_path):
    with pytest.raises(CbnsError, match=r"c.yaml:1: option lr must be float, got '1e-2'"):
        config_of(tmp_path, "lr: '1e-2'\n")
