"""cbns recommend on hostile input: ids the loaders would refuse, damaged embeddings, JSON output."""
import json

import numpy as np
import pytest
from conftest import copy_run

from cbns.cli import main


def recommend(capsys, run, *args):
    code = main(["recommend", str(run), "--threads", "1", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("user", ["99999999999999999999999", "+1", " 7 ", "\u0663", "1_0", "-1", "7.0", ""])
def test_ids_the_loaders_refuse_are_refused_in_one_line(capsys, tiny_run, user):
    code, out, err = recommend(capsys, tiny_run, "--user", user)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"cbns: error: --user {user!r}: not an id of this run: its ids are the integers 0..39")


def test_an_unknown_but_well_formed_id_says_so(capsys, tiny_run):
    code, _, err = recommend(capsys, tiny_run, "--user", "40")
    assert code == 2 and "--user '40': not in this run (40 known" in err


def test_json_output_is_strict_json(capsys, tiny_run):
    code, out, _ = recommend(capsys, tiny_run, "--user", "3", "--user", "007", "-k", "5", "--format", "json")
    assert code == 0
    answer = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert [a["user"] for a in answer] == [3, 7] and all(len(a["items"]) == 5 for a in answer)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_embedding_row_is_refused_naming_file_and_row(capsys, tiny_run, tmp_path, value):
    run = copy_run(tiny_run, tmp_path / "run")
    items = np.load(run / "item_embeddings.npy")
    items[17, 1] = value
    np.save(run / "item_embeddings.npy", items)
    code, out, err = recommend(capsys, run, "--user", "3", "--format", "json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"item_embeddings.npy: row 17 holds {value} (1 non-finite values in all); the file is damaged" in err
