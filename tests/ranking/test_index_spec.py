"""Index parameters are range-checked before faiss sees them: any integer either resolves to a
spec faiss can build, or is refused in one line naming the flag (faiss takes C ints, crashes on
m = 1, and allocates a beam of ef entries per query thread)."""
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.cli.options import flag_name
from cbns.errors import CbnsError
from cbns.ranking.index_spec import BOUNDS, PARAMS, IndexSpec

values = st.one_of(st.integers(-3, 40), st.integers(2**20 - 2, 2**20 + 2), st.sampled_from([2**31 - 1, 2**31, 2**63, 10**30]))


@fuzz_settings(300)
@given(kind=st.sampled_from(["ivf", "hnsw"]), name=st.sampled_from(sorted(BOUNDS)), value=values,
       num_items=st.integers(1, 50))
def test_every_value_resolves_or_is_refused_naming_the_flag(kind, name, value, num_items):
    flag = "--" + name.replace("_", "-")  # on the command line; from Python: option <name>
    low, high = BOUNDS[name]
    limit = {"nlist": num_items, "nprobe": None}.get(name, high)
    try:
        spec = IndexSpec(kind, **{name: value}).resolve(num_items)
    except CbnsError as exc:
        message = str(exc)
        assert message.startswith(f"option {name}: ") and "\n" not in message
        assert exc.render(flag=flag_name).startswith(f"{flag}: ")
        wrong_kind = name not in PARAMS[kind]
        out_of_range = value < low or (limit is not None and value > limit)
        assert wrong_kind or out_of_range or name == "nprobe"  # nprobe: also bounded by the resolved nlist
        return
    assert name in PARAMS[kind] and low <= value and (limit is None or value <= limit)
    assert getattr(spec, name) == value


@pytest.mark.parametrize("name,value,message", [
    ("ef_search", 2**31, r"option ef_search: must be <= 1,048,576"),
    ("ef_construction", 2**31 - 1, r"option ef_construction: must be <= 1,048,576"),
    ("m", 1, r"option m: must be >= 2, got 1"),
    ("m", 2**31, r"option m: must be <= 512"),
])
def test_hnsw_bounds(name, value, message):
    with pytest.raises(CbnsError, match=message):
        IndexSpec("hnsw", **{name: value}).resolve(100)


def test_an_index_larger_than_the_memory_is_refused_before_building(monkeypatch):
    import numpy as np

    from cbns.ranking import item_index

    monkeypatch.setattr(item_index, "available_memory", lambda: 10_000)
    # 100 x (8 + 1) x 4 vector bytes + 100 x 4 x 3 x 512 link bytes + 100 x 16 = 619,600 B = 605.1 KB
    with pytest.raises(CbnsError, match=r"option m: hnsw\(m=512, ef_search=128, ef_construction=80\) over 100 items "
                                        r"x 8 needs about 605.1 KB, but 9.8 KB of memory is available"):
        item_index.ItemIndex.build(np.ones((100, 8), np.float32), IndexSpec("hnsw", m=512))
