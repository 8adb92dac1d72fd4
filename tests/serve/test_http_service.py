"""``cbns serve`` as a client sees it: the real command in a subprocess on a free loopback port,
real HTTP requests (httpx). Answers equal the Recommender's on the same run and a numpy brute
force; every bad input is a 404 or 422 with a one-line JSON message, never a 500; concurrent
requests are scored in batches; SIGTERM ends the service with status 0 and no traceback; a
stale index is refused before the port opens."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import copy_run

from cbns.cli import main
from cbns.ranking.item_index import INDEX_FILE, INDEX_META
from cbns.serve.recommender import Recommender

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``python -m cbns serve RUN`` on a free port of 127.0.0.1, ready once ``/health`` answers."""

    def __init__(self, run: Path, *flags: str, log: Path, python: tuple[str, ...] = ("-m", "cbns")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen([sys.executable, *python, "serve", str(run), "--port", str(self.port),
                                      "--threads", "1", *flags], cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=log.open("w"), env={**os.environ, "PYTHONPATH": str(REPO),
                                                                "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cbns serve exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.proc.kill()
        raise AssertionError(f"cbns serve did not answer /health in 180 s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.log.read_text()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="module")
def text_run(tiny_run, tmp_path_factory) -> Path:
    """The tiny run with text ids: users ``u0``..``u39``, items ``item-000``..``item-029``."""
    run = copy_run(tiny_run, tmp_path_factory.mktemp("text-ids") / "run")
    (run / "user_ids.txt").write_text("".join(f"u{u}\n" for u in range(40)))
    (run / "item_ids.txt").write_text("".join(f"item-{i:03d}\n" for i in range(30)))
    return run


@pytest.fixture(scope="module")
def service(text_run, tmp_path_factory):
    """One service for the module; a 20 ms batching window so that concurrent requests meet."""
    svc = Service(text_run, "--max-wait-ms", "20", log=tmp_path_factory.mktemp("log") / "serve.err")
    yield svc
    if svc.proc.poll() is None:
        svc.terminate()


def items_of(rec: Recommender, ranked) -> list[dict]:
    """The Recommender's answer for one query as the service writes it."""
    return [{"item": item, "score": round(score, 6)} for item, score in ranked.lists()[0]]


def brute_force(run: Path, user: int, k: int, seen: set[int]) -> list[int]:
    """Item rows of the top ``k`` by numpy dot products, ``seen`` left out."""
    scores = np.load(run / "item_embeddings.npy").astype(np.float64) @ np.load(run / "user_embeddings.npy")[user]
    scores[list(seen)] = -np.inf
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def test_user_queries_equal_the_recommender_and_a_brute_force(service, text_run):
    rec = Recommender.from_run(text_run)
    for user, k, exclude in (("u0", 5, True), ("u7", 30, False), ("u39", 1, True), ("u12", 24, True)):
        r = httpx.post(f"{service.url}/recommend", json={"user": user, "k": k, "exclude_seen": exclude})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "user" and body["user"] == user
        assert body["items"] == items_of(rec, rec.recommend([user], k=k, exclude_seen=exclude))
        row = int(user[1:])
        seen = set(rec.seen[row].indices.tolist()) if exclude else set()
        expected = brute_force(text_run, row, min(k, 30 - len(seen)), seen)
        assert [int(x["item"][5:]) for x in body["items"]] == expected
        assert all(isinstance(x["score"], float) for x in body["items"])


def test_history_queries_equal_the_recommender(service, text_run):
    rec = Recommender.from_run(text_run)
    for history, k, exclude in ((["item-003"], 5, True), (["item-010", "item-002", "item-029"], 27, True),
                                (["item-007", "item-007"], 4, False)):
        r = httpx.post(f"{service.url}/recommend", json={"history": history, "k": k, "exclude_seen": exclude})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "history" and body["user"] is None
        assert body["items"] == items_of(rec, rec.recommend_history([history], k=k, exclude_seen=exclude))
        if exclude:
            assert not set(history) & {x["item"] for x in body["items"]}


def test_similar_items_equal_the_recommender(service, text_run):
    rec = Recommender.from_run(text_run)
    for item, k in (("item-000", 3), ("item-017", 29)):
        r = httpx.get(f"{service.url}/similar/{item}", params={"k": k})
        assert r.status_code == 200, r.text
        assert r.json() == {"item": item, "items": items_of(rec, rec.similar_items([item], k=k))}
        assert item not in [x["item"] for x in r.json()["items"]] and len(r.json()["items"]) == k


def test_health_and_the_openapi_docs(service, text_run):
    health = httpx.get(f"{service.url}/health").json()
    assert health["status"] == "ok" and health["source"] == str(text_run)
    assert (health["users"], health["items"], health["dim"], health["scoring"]) == (40, 30, 5, "exact")
    assert health["query_kinds"] == ["user", "history"] and health["max_k"] == 30  # an ID tower folds a history in
    schema = httpx.get(f"{service.url}/openapi.json").json()
    assert {"/recommend", "/similar/{item}", "/health"} <= set(schema["paths"])
    docs = httpx.get(f"{service.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


BAD = [  # (method, path, body or None, status, words in the detail)
    ("POST", "/recommend", {"user": "nobody"}, 404, "user 'nobody': not in this run (40 known"),
    ("POST", "/recommend", {"user": 3}, 404, "user '3': not in this run"),  # the ids are text here
    ("GET", "/similar/item-999", None, 404, "item 'item-999': not in this run (30 known"),
    ("POST", "/recommend", {"user": "u1", "k": 0}, 422, "k: must be between 1 and 30, got 0"),
    ("POST", "/recommend", {"user": "u1", "k": 31}, 422, "k: must be between 1 and 30, got 31"),
    ("POST", "/recommend", {"user": "u1", "k": -5}, 422, "k: must be between 1 and 30, got -5"),
    ("GET", "/similar/item-001?k=0", None, 422, "k: must be between 1 and 30, got 0"),
    ("GET", "/similar/item-001?k=1000000", None, 422, "k: must be between 1 and 30, got 1000000"),
    ("GET", "/similar/item-001?k=ten", None, 422, "query.k: Input should be a valid integer"),
    ("POST", "/recommend", {"user": "u1", "k": "5"}, 422, "body.k: Input should be a valid integer"),
    ("POST", "/recommend", {"user": "u1", "k": 2.5}, 422, "body.k: Input should be a valid integer"),
    ("POST", "/recommend", {"user": "u1", "exclude_seen": "no"}, 422, "body.exclude_seen: Input should be a valid boolean"),
    ("POST", "/recommend", {"user": 1.5}, 422, "body.user: an id is a JSON integer or string, got 1.5"),
    ("POST", "/recommend", {"user": True}, 422, "body.user: an id is a JSON integer or string, got true"),
    ("POST", "/recommend", {"user": ["u1"]}, 422, "body.user: an id is a JSON integer or string"),
    ("POST", "/recommend", {}, 422, "give exactly one of user, history, features (got none)"),
    ("POST", "/recommend", {"user": "u1", "history": ["item-001"]}, 422, "(got user and history)"),
    ("POST", "/recommend", {"user": "u1", "users": ["u2"]}, 422, "body.users: Extra inputs are not permitted"),
    ("POST", "/recommend", {"history": []}, 422, "body.history: List should have at least 1 item"),
    ("POST", "/recommend", [1, 2], 422, "body: Input should be a valid dictionary"),
    ("POST", "/recommend", "{not json", 422, "body: not valid JSON at character 1"),
    ("POST", "/recommend", "", 422, "body: Field required"),
    ("POST", "/recommend", b"\xff\xfe", 422, "body: not valid JSON"),
    ("POST", "/recommend", {"history": ["item-001", "ghost"]}, 404, "history item 'ghost': not in this run (30 known"),
    ("POST", "/recommend", {"history": "item-001"}, 422, "body.history: Input should be a valid list"),
    ("POST", "/recommend", {"features": {"age": 3}}, 422, "this run cannot answer a features query; it answers: user, history"),
    ("POST", "/recommend", {"features": [1]}, 422, "body.features: Input should be a valid dictionary"),
    ("GET", "/nowhere", None, 404, "Not Found"),
    ("GET", "/recommend", None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD, ids=[f"{b[0]} {b[1]} {b[2]!r}"[:60] for b in BAD])
def test_bad_input_is_a_json_client_error_never_a_500(service, method, path, body, status, words):
    if isinstance(body, (str, bytes)):
        r = httpx.request(method, service.url + path, content=body, headers={"content-type": "application/json"})
    else:
        r = httpx.request(method, service.url + path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail


def test_a_body_without_the_json_content_type_is_told_so(service):
    r = httpx.post(f"{service.url}/recommend", content=json.dumps({"user": "u1"}),
                   headers={"content-type": "text/plain"})
    assert r.status_code == 422
    assert r.json() == {"detail": "body: not read as JSON; send a JSON object with the header Content-Type: "
                                  "application/json"}


def test_concurrent_requests_are_scored_together_and_each_gets_its_own_answer(service, text_run):
    rec = Recommender.from_run(text_run)
    before = httpx.get(f"{service.url}/health").json()["batching"]
    users = [f"u{u}" for u in range(40)]

    async def ask():
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            users_answers = asyncio.gather(*(client.post("/recommend", json={"user": u, "k": 7}) for u in users))
            similar_answers = asyncio.gather(*(client.get(f"/similar/item-{i:03d}", params={"k": 4})
                                               for i in range(10)))
            bad_answers = asyncio.gather(*(client.post("/recommend", json={"user": f"ghost{g}", "k": 7})
                                           for g in range(5)))
            return await asyncio.gather(users_answers, similar_answers, bad_answers)

    user_rs, similar_rs, bad_rs = asyncio.run(ask())
    expected = rec.recommend(users, k=7)
    assert [r.status_code for r in user_rs] == [200] * 40
    assert [r.json()["items"] for r in user_rs] == [[{"item": i, "score": round(s, 6)} for i, s in pairs]
                                                    for pairs in expected.lists()]
    assert [r.json()["items"] for r in similar_rs] == [
        [{"item": i, "score": round(s, 6)} for i, s in pairs]
        for pairs in rec.similar_items([f"item-{i:03d}" for i in range(10)], k=4).lists()]
    assert [r.status_code for r in bad_rs] == [404] * 5  # refused before batching: no batch fails for them
    after = httpx.get(f"{service.url}/health").json()["batching"]
    assert after["requests"] - before["requests"] == 50
    assert after["batches"] - before["batches"] < 50 and after["largest"] > 1


def test_sigterm_ends_the_service_with_status_0_and_no_traceback(tiny_run, tmp_path):
    svc = Service(tiny_run, log=tmp_path / "serve.err")
    rec = Recommender.from_run(tiny_run)
    r = httpx.post(f"{svc.url}/recommend", json={"user": "5", "k": 4})  # an integer-id run also finds "5"
    assert r.json() == {"query": "user", "user": 5, "items": items_of(rec, rec.recommend([5], k=4))}
    assert svc.terminate() == 0
    err = svc.stderr()
    assert "Traceback" not in err and "Application shutdown complete" in err
    assert err.strip().endswith("cbns: serve: stopped by SIGTERM")
    assert f"cbns: serving {tiny_run} (40 users, 30 items, exact scoring, 1 worker) on http://127.0.0.1:{svc.port}" in err


def test_workers_each_load_the_run_and_stop_on_sigterm(tiny_run, tmp_path):
    svc = Service(tiny_run, "--workers", "2", log=tmp_path / "serve.err")
    rec = Recommender.from_run(tiny_run)
    with httpx.Client(base_url=svc.url) as client:
        for user in range(6):
            assert client.post("/recommend", json={"user": user, "k": 3}).json()["items"] == \
                items_of(rec, rec.recommend([user], k=3))
    assert svc.terminate() == 0
    err = svc.stderr()
    assert "Traceback" not in err and err.count("Application startup complete") == 2
    assert "2 workers" in err


def test_a_stale_index_is_refused_before_the_port_opens(tiny_run, valid_run, tmp_path, capsys):
    built = copy_run(tiny_run, tmp_path / "built")
    assert main(["index", "build", str(built), "--kind", "flat", "--threads", "1"]) == 0
    other = copy_run(valid_run, tmp_path / "other")
    for name in (INDEX_FILE, INDEX_META):  # the index of another run's item vectors
        shutil.copy(built / name, other / name)
    port = free_port()
    capsys.readouterr()
    assert main(["serve", str(other), "--port", str(port), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cbns: error: ") and "built from other item embeddings" in err
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert main(["serve", str(tmp_path / "absent"), "--port", str(port)]) == 2
    assert "absent: no such run directory or bundle" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "words"), [(["--workers", "0"], "--workers: must be >= 1, got 0"),
                                              (["--port", "70000"], "--port: must be between 0 and 65535"),
                                              (["--max-batch", "0"], "--max-batch: must be >= 1, got 0"),
                                              (["--max-wait-ms", "-1"], "--max-wait-ms: must be >= 0"),
                                              (["--max-k", "0"], "--max-k: must be >= 1, got 0")])
def test_bad_options_end_in_one_line(tiny_run, capsys, flags, words):
    assert main(["serve", str(tiny_run), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_a_port_in_use_ends_in_one_line(tiny_run, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(tiny_run), "--port", str(port), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--host 127.0.0.1 --port {port}: cannot listen there" in err, err


@pytest.fixture(scope="module")
def features_run(tmp_path_factory) -> Path:
    """A feature-tower run: the tiny users with a colour (red/green/blue, or missing) each."""
    from conftest import write_tiny_lightgcn

    from cbns.api import train
    from cbns.config import TrainConfig

    root = write_tiny_lightgcn(tmp_path_factory.mktemp("features-run"), seed=6)
    colours = ["red", "green", "blue", ""]
    (root / "users.csv").write_text("user,colour\n" + "".join(f"{u},{colours[u % 4]}\n" for u in range(40)))
    train(TrainConfig(data=str(root), user_tower="features", user_features=str(root / "users.csv"), dim=4,
                      hidden_dim=6, batch_size=32, epochs=1, threads=1), root / "run", progress=False, verbose=False)
    return root / "run"


def test_attribute_queries_on_a_feature_tower_run(features_run, tmp_path):
    svc = Service(features_run, log=tmp_path / "serve.err")
    try:
        rec = Recommender.from_run(features_run)
        with httpx.Client(base_url=svc.url) as client:
            assert client.get("/health").json()["query_kinds"] == ["user", "features"]
            for features, k in (({"colour": "red"}, 5), ({"colour": "blue"}, 30), ({}, 3)):
                r = client.post("/recommend", json={"features": features, "k": k})
                assert r.status_code == 200, r.text
                assert r.json() == {"query": "features", "user": None,
                                    "items": items_of(rec, rec.recommend_features([features], k=k))}
            for body, status, words in (
                    ({"features": {"colour": "purple"}}, 404, "purple"),
                    ({"features": {"shoe_size": 9}}, 422, "shoe_size"),
                    ({"history": [1, 2]}, 422, "this run cannot answer a history query; it answers: user, features")):
                r = client.post("/recommend", json=body)
                assert r.status_code == status and words in r.json()["detail"], r.text
            # a bad attribute among good ones in one batch fails alone (the batch is scored again one by one)
            async def together():
                async with httpx.AsyncClient(base_url=svc.url) as aclient:
                    bodies = [{"features": {"colour": c}, "k": 4} for c in ("red", "purple", "green", "blue")]
                    return await asyncio.gather(*(aclient.post("/recommend", json=b) for b in bodies))

            answers = asyncio.run(together())
            assert [a.status_code for a in answers] == [200, 404, 200, 200]
            assert answers[2].json()["items"] == items_of(rec, rec.recommend_features([{"colour": "green"}], k=4))
    finally:
        assert svc.terminate() == 0
    assert "Traceback" not in svc.stderr()


WITHOUT_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, NoTorch())
sys.argv = ["cbns", *sys.argv[1:]]
from cbns.cli import entry
entry()
"""


def test_a_bundle_is_served_without_torch_and_answers_as_its_run(tiny_run, tmp_path):
    from cbns.serve.export import export_bundle

    export_bundle(tiny_run, tmp_path / "bundle")
    svc = Service(tmp_path / "bundle", log=tmp_path / "serve.err", python=("-c", WITHOUT_TORCH))
    try:
        rec = Recommender.from_run(tiny_run)
        with httpx.Client(base_url=svc.url) as client:
            health = client.get("/health").json()
            assert health["query_kinds"] == ["user", "history"] and health["scoring"] == "exact"
            asked = [(client.post("/recommend", json={"user": u, "k": 6}), rec.recommend([u], k=6)) for u in (0, 17)]
            asked.append((client.post("/recommend", json={"history": [3, 9, 4], "k": 6}),
                          rec.recommend_history([[3, 9, 4]], k=6)))
            asked.append((client.get("/similar/11", params={"k": 6}), rec.similar_items([11], k=6)))
            for r, expected in asked:
                assert r.status_code == 200, r.text
                got = r.json()["items"]
                assert [x["item"] for x in got] == expected.ids[0].tolist()  # numpy scoring, same order
                np.testing.assert_allclose([x["score"] for x in got], expected.scores[0], atol=2e-6)
            assert client.post("/recommend", json={"user": 40}).status_code == 404
    finally:
        assert svc.terminate() == 0
    assert "Traceback" not in svc.stderr() and "torch is blocked" not in svc.stderr()


def test_a_bundle_whose_checksum_fails_is_refused(tiny_run, tmp_path, capsys):
    from cbns.serve.export import export_bundle

    bundle = tmp_path / "bundle"
    export_bundle(tiny_run, bundle)
    vectors = np.load(bundle / "item_embeddings.npy")
    vectors[3, 0] += 0.5  # same size, other bytes
    np.save(bundle / "item_embeddings.npy", vectors)
    capsys.readouterr()
    assert main(["serve", str(bundle), "--port", str(free_port()), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cbns: error: ") and "item_embeddings.npy" in err, err
