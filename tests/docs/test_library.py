"""docs/library.md: the custom loop runs exactly as written on MovieLens-100k (leave-one-out) and
reaches the test HR@20 of cbns.train with the same towers and settings, within noise."""
import re
from pathlib import Path

import pytest
from conftest import SHARED_DATA

DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"
ML100K = SHARED_DATA / "ml-100k"
EPOCHS = 12

pytestmark = pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason="needs ../shared/data/ml-100k")


def test_the_custom_loop_matches_cbns_train_with_the_same_towers(tmp_path, capsys):
    import torch

    import cbns

    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(code) == 1
    namespace = {"ML100K": str(ML100K), "EPOCHS": EPOCHS, "__name__": "library_example"}
    torch.set_num_threads(2)
    exec(compile(code[0], str(DOC), "exec"), namespace)
    custom = namespace["test_hr"]
    top = namespace["rows"]
    assert top.shape == (3, 10) and (top >= 0).all()  # the index answered every query
    # the same towers and settings in cbns's own loop (the README's second block, with EPOCHS)
    config = cbns.TrainConfig(data=str(ML100K), split="loo", dim=64, batch_size=512, memory_size=1024, lr=1e-3,
                              lr_schedule="constant", item_bias=False, popularity_prior="off", epochs=EPOCHS,
                              patience=EPOCHS, ks=[20], threads=2)
    torch.manual_seed(0)
    result = cbns.train(config, out=tmp_path / "run", progress=False, verbose=False,
                        user_tower=namespace["UserTower"](namespace["data"].num_users),
                        item_tower=namespace["ItemTower"](namespace["genres"]))
    library = result.test["hit@20"]
    print(f"custom loop test HR@20 {custom:.4f}, cbns.train {library:.4f}")
    # 943 test users: the standard error of a hit rate near 0.2 is about 0.013; allow three
    assert abs(custom - library) < 0.04, (custom, library)
    assert custom > 0.12 and library > 0.12  # well above the 20 / 1682 of a random ranking
