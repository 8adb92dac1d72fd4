"""One error, two readers: from Python it names options as the config does, on the command line
as flags (the same message otherwise)."""
import pytest

from cbns.cli import main
from cbns.cli.options import flag_name
from cbns.config import TrainConfig
from cbns.data.loading import load_dataset
from cbns.errors import CbnsError, FlagsOnly, Opt, OptionError


def test_an_option_error_reads_as_the_option_from_python_and_as_the_flag_on_the_command_line(capsys):
    with pytest.raises(OptionError) as caught:
        TrainConfig(memory_size=-5).validate()
    error = caught.value
    assert str(error) == "option memory_size: must be >= 0, got -5" and error.option == "memory_size"
    assert error.render(flag=flag_name) == "--memory-size: must be >= 0, got -5"
    assert main(["train", "--memory-size", "-5"]) == 2
    assert capsys.readouterr().err == "cbns: error: --memory-size: must be >= 0, got -5\n"


def test_parts_render_values_and_command_line_only_words():
    error = CbnsError(Opt("split", "loo"), ": no event times; use ", Opt("split", "random"), " or drop the ",
                      FlagsOnly("flag", otherwise="option"))
    assert str(error) == "option split=loo: no event times; use split=random or drop the option"
    assert error.render(flag=flag_name) == "--split loo: no event times; use --split random or drop the flag"
    assert error.option == "split" and CbnsError("plain").option is None


def test_a_library_error_names_the_option_and_the_cli_shows_the_flag(tmp_path, capsys):
    with pytest.raises(CbnsError) as caught:
        load_dataset(str(tmp_path / "nope"))
    assert str(caught.value).startswith(f"option data={tmp_path / 'nope'}: no such file or directory")
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(f"cbns: error: --data {tmp_path / 'nope'}: no such file or directory")
