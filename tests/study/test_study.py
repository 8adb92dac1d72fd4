"""cbns study: spec errors, the grid expansion, user slices, and a small study end to end."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from cbns.cli import main
from cbns.errors import CbnsError
from cbns.study import load_spec, parse_spec, run_study
from cbns.study.cells import expand

PNG = b"\x89PNG\r\n\x1a\n"


def spec_dict(**sections):
    return {"base": {"dim": 8, "epochs": 1}, "datasets": {"g": "gowalla"},
            "samplers": {"ib": {"sampler": "inbatch"}, "cb": {"sampler": "cbns"}, "un": {"sampler": "uniform"}},
            "seeds": [0, 1], "sections": sections}


@pytest.mark.parametrize("raw,message", [
    ({"sections": {"a": {"kind": "bogus"}}}, "x.yaml: sections.a.kind: must be one of samplers, memory, batch, table, got 'bogus'"),
    ({"sections": {"a": {"samplers": ["nope"]}}}, "x.yaml: sections.a.samplers: unknown label 'nope'; defined: ib, cb, un"),
    ({"sections": {"a": {"memory_sizes": ["2X"]}}}, "x.yaml: sections.a.memory_sizes: expected an item count >= 0 or a multiple of the batch size such as 2B, got '2X'"),
    ({"sections": {"a": {"kind": "batch", "samplers": ["cb"]}}}, "needs a label with sampler: inbatch, got cb"),
    ({"sections": {"a": {"batch_size": [2]}}}, "x.yaml: sections.a: unknown key 'batch_size'"),
    ({"base": {"memory_sizee": 3}, "sections": {"a": {}}}, "x.yaml: base: unknown option 'memory_sizee'"),
    ({"sections": {"a": {"vary": {"lr": "high"}}}}, "x.yaml: sections.a.vary.lr: expected a non-empty list"),
    ({"sections": {"a": {"options": {"lr": -1.0}}}}, "x.yaml: sections.a: cell g/id/ib: lr: must be > 0, got -1.0"),
    ({"sections": {}}, "x.yaml: sections: at least one section is needed"),
])
def test_spec_errors_name_the_file_and_key(raw, message):
    base = spec_dict()
    base["sections"] = {}
    with pytest.raises(CbnsError) as info:
        expand(parse_spec({**base, **raw}, source="x.yaml"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_expansion_counts_memory_only_for_cbns_and_adds_in_batch_at_b_plus_m():
    spec = parse_spec(spec_dict(
        compare={"kind": "samplers", "batch_sizes": [64], "memory_sizes": [128, "2B"]},
        batch={"kind": "batch", "samplers": ["ib", "cb"], "batch_sizes": [32, 64], "memory_sizes": ["1B"], "seeds": [0]},
    ))
    cells = expand(spec)
    got = sorted((c.sampler_name, c.batch_size, c.memory_size, c.seed) for c in cells)
    expected = sorted(
        # compare: 2 seeds x (ib, un once each; cb at M=128 and M=2*64=128 is one cell)
        [(s, 64, None, seed) for s in ("inbatch", "uniform") for seed in (0, 1)] + [("cbns", 64, 128, 0), ("cbns", 64, 128, 1)]
        # batch, seed 0: ib at 32, 64 (shared); cb at (32, 32), (64, 64); in-batch at B+M = 64 (shared), 128
        + [("inbatch", 32, None, 0), ("cbns", 32, 32, 0), ("cbns", 64, 64, 0), ("inbatch", 128, None, 0)])
    assert got == expected
    shared = next(c for c in cells if c.sampler_name == "inbatch" and c.batch_size == 64 and c.seed == 0)
    assert shared.sections == ["compare", "batch"]


def test_cell_names_follow_options_not_threads_or_explicit_defaults():
    def names(base_extra=None, section_options=None):
        raw = spec_dict(a={"samplers": ["cb"], "seeds": [0], "options": section_options or {}})
        raw["base"].update(base_extra or {})
        return [c.name for c in expand(parse_spec(raw))]

    plain = names()
    assert names({"threads": 1}) == plain
    assert names({"lr": 0.5}) != plain
    assert re.fullmatch(r"g_id_cb_B2048_M4096_s0_[0-9a-f]{8}", plain[0])
    # one section sets warmup_steps to its default, another leaves it: one cell
    raw = spec_dict(a={"samplers": ["cb"], "seeds": [0]},
                    b={"samplers": ["cb"], "seeds": [0], "vary": {"warmup_steps": [0, 5]}})
    cells = expand(parse_spec(raw))
    assert len(cells) == 2 and cells[0].sections == ["a", "b"]


def test_bundled_specs_parse():
    for name in ("quick", "default"):
        spec = load_spec(name)
        assert expand(spec) and {s.kind for s in spec.sections} >= {"samplers", "memory", "batch"}
    assert load_spec("default").datasets["gowalla"].source == "gowalla"


def test_user_subset_keeps_whole_users_and_renumbers(tmp_path):
    from cbns.data import load_dataset
    from cbns.data.subset import user_subset, write_lightgcn_dir

    full = load_dataset("gowalla")
    part = user_subset(full, 50, seed=3)
    assert part.num_users == 50 and part.train[:, 0].max() == 49 and part.train[:, 1].max() == part.num_items - 1
    # map back through the sorted kept ids: every pair must be an original pair
    kept = np.sort(np.random.default_rng(3).choice(np.unique(full.train[:, 0]), 50, replace=False))
    items = np.unique(full.train[np.isin(full.train[:, 0], kept), 1])
    original = set(map(tuple, full.train))
    assert all((kept[u], items[i]) in original for u, i in part.train)
    assert len(part.train) == np.isin(full.train[:, 0], kept).sum()
    assert set(part.test[:, 1]) <= set(part.train[:, 1])
    again = load_dataset(str(write_lightgcn_dir(part, tmp_path / "slice")))
    for name in ("train", "test"):
        assert np.array_equal(np.unique(getattr(again, name), axis=0), np.unique(getattr(part, name), axis=0))


def tiny_spec(tmp_path, epochs=2):
    raw = {
        "base": {"dim": 8, "epochs": epochs, "lr": 0.05, "patience": 5, "drift_every": 2, "drift_sample": 64},
        "datasets": {"g300": {"from": "gowalla", "users": 300, "seed": 0}},
        "samplers": {"inbatch": {"sampler": "inbatch"}, "cbns": {"sampler": "cbns", "item_side": "split"}},
        "seeds": [0, 1],
        "sections": {
            "samplers": {"kind": "samplers", "batch_sizes": [128], "memory_sizes": ["1B"]},
            "memory": {"kind": "memory", "samplers": ["cbns"], "batch_sizes": [128], "memory_sizes": [64, 128], "seeds": [0]},
            "batch": {"kind": "batch", "batch_sizes": [64], "memory_sizes": ["1B"], "seeds": [0]},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_study_end_to_end_resumes_and_reports_the_cells_numbers(tmp_path, monkeypatch, capsys):
    import cbns.api

    spec = load_spec(str(tiny_spec(tmp_path)))
    out = tmp_path / "study"
    # 4 samplers cells (2 seeds), memory M=64, batch: ib 64, cbns (64, 64), ib 128 shared -> 7 cells
    assert len(expand(spec)) == 7

    # Interrupt during the third cell: the two finished ones are reported, nothing else.
    real_train, calls = cbns.api.train, []

    def flaky_train(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    import cbns.study.report

    real_write, writes = cbns.study.report.write_outputs, []

    def counting_write(*args, **kwargs):
        writes.append(len(calls))
        return real_write(*args, **kwargs)

    real_panels, drawn = cbns.study.report.save_panels, {}

    def recording_panels(panels, path, *args, **kwargs):
        drawn[path.stem] = panels
        return real_panels(panels, path, *args, **kwargs)

    monkeypatch.setattr(cbns.api, "train", flaky_train)
    monkeypatch.setattr(cbns.study.report, "write_outputs", counting_write)
    monkeypatch.setattr(cbns.study.report, "save_panels", recording_panels)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, out, threads=1, progress=False, refresh_seconds=0)
    assert "cells finished: 2 of 7" in (out / "report.md").read_text()
    assert writes == [1, 2, 3]  # refreshed after each finished cell, and once more on the interrupt

    first = run_study(spec, out, threads=1, progress=False)
    assert len(first.trained) == 5 and not first.pending
    assert calls[3:] == [out / "cells" / n for n in first.trained]  # the two finished cells were not retrained

    results = json.loads((out / "results.json").read_text())["cells"]
    assert len(results) == 7
    for entry in results:
        metrics = json.loads((out / entry["dir"] / "metrics.json").read_text())
        assert entry["status"] == "done"
        assert entry["test"] == metrics["test"] and entry["valid"] == metrics["valid"]
        assert entry["seconds_per_epoch"] == metrics["seconds_per_epoch"]
        assert [h["seconds"] for h in entry["history"]] == [h["seconds"] for h in metrics["history"]]
    for name in ("samplers_convergence", "samplers_drift", "memory_memory", "batch_batch"):
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png[:8] == PNG and len(png) > 10_000
    # one line per sampler and seed in the convergence plot, no two drawn alike (tests/plots)
    series = drawn["samplers_convergence"][0].series
    assert sorted(s.label for s in series) == ["cbns M=128 (seed 0)", "cbns M=128 (seed 1)", "inbatch (seed 0)",
                                               "inbatch (seed 1)"]
    assert len({(s.color_key, s.variant) for s in series}) == 4 and len({s.color_key for s in series}) == 2

    # The samplers table's in-batch row: mean ± sample std of the two seeds' test recall@20.
    report = (out / "report.md").read_text()
    seeds = [e["test"]["recall@20"] for e in results if e["sampler"] == "inbatch" and e["batch_size"] == 128]
    row = next(line for line in report.splitlines() if line.startswith("| inbatch | 128 | — | 2/2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == f"{np.mean(seeds):.4f} ± {np.std(seeds, ddof=1):.4f}"
    assert "### Equal negatives" in report and "| cbns | 64 | 64 | 127 |" in report

    # Rerun: nothing trains; a lost metrics.json retrains exactly that cell.
    assert run_study(spec, out, threads=1, progress=False).trained == []
    victim = results[2]
    (out / victim["dir"] / "metrics.json").unlink()
    assert run_study(spec, out, threads=1, progress=False).trained == [victim["name"]]


def test_cli_study_errors_and_list(capsys, tmp_path):
    assert main(["study", "--spec", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cbns: error: --spec nope: no such file, and not a bundled spec (default, quick")
    assert err.count("\n") == 1
    assert main(["study", "--spec", str(tiny_spec(tmp_path)), "--out", str(tmp_path / "s"), "--list"]) == 0
    out = capsys.readouterr().out
    assert out.count("pending ") == 7 and "0 of 7 cells finished" in out


def test_study_help_points_to_the_docs_and_states_each_bundled_specs_cells(capsys):
    from cbns.cli.study_cmd import SPEC_COSTS

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "format: docs/study.md" in text and "cbns/study/spec.py" not in text
    for name, (cells, cost) in SPEC_COSTS.items():
        assert len(expand(load_spec(name))) == cells, name  # counted by expanding the spec itself
        assert f"{name}: {cells} cells, {cost}" in text
    doc = (Path(__file__).resolve().parents[2] / "docs" / "study.md").read_text()
    for name, (cells, _) in SPEC_COSTS.items():
        assert f"`{name}` | {cells} |" in doc
