"""Unit oracles for the serving helpers: id maps."""
import numpy as np
import pytest

from cbns.errors import CbnsError
from cbns.serve.id_map import IdMap


def test_id_map_with_file_keeps_text_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("007\nb c\nalice\n")
    ids = IdMap.from_file(path, 3)
    np.testing.assert_array_equal(ids.to_rows(["alice", "007", "b c"]), [2, 0, 1])
    assert list(ids.to_ids(np.array([1, -1, 0]))) == ["b c", None, "007"]
    with pytest.raises(CbnsError, match=r"^user '7': not in this run \(3 known, ids in .*ids.txt\) \(and 1 more unknown\)$"):
        ids.to_rows([7, "alice", "bob"], "user")


def test_id_map_without_file_is_the_integer_identity(tmp_path):
    ids = IdMap.from_file(tmp_path / "absent.txt", 5)
    np.testing.assert_array_equal(ids.to_rows([4, "0", np.int64(2)]), [4, 0, 2])
    with pytest.raises(CbnsError, match=r"not in this run \(5 known, integer ids 0\.\.4\)"):
        ids.to_rows([5])
    for bad in (-1, "x"):  # not integer ids at all (tests/serve/test_id_map.py: the loaders' rule)
        with pytest.raises(CbnsError, match=r"not an id of this run: its ids are the integers 0\.\.4"):
            ids.to_rows([bad])


def test_id_map_rejects_a_file_of_the_wrong_length(tmp_path):
    path = tmp_path / "item_ids.txt"
    path.write_text("a\nb\n")
    with pytest.raises(CbnsError, match="2 ids for 3 embedding rows"):
        IdMap.from_file(path, 3)
