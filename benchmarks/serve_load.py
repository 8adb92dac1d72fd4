"""Load on ``cbns serve``: N concurrent clients for T seconds against the real service on 127.0.0.1.

    python benchmarks/serve_load.py RUN_DIR [--clients 16] [--seconds 30] [-k 20] [--threads 1]

For each configuration, the service is started as ``python -m cbns serve RUN_DIR --port P`` (a free
port), warmed up for ``--warmup`` seconds, loaded for ``--seconds`` seconds, and stopped with
SIGTERM (its exit status is recorded). The configurations, one after the other in this one run:

* scoring: the run's index (when ``index.faiss`` was built: ``cbns index build RUN --kind hnsw``) and
  exact scoring (``--exact``);
* batching: micro-batching (``--max-batch 64 --max-wait-ms 2``, the defaults) against one request
  at a time (``--max-batch 1``).

Each client holds one keep-alive HTTP/1.1 connection and sends its next request as soon as the
previous answer is read (a closed loop). The mix (``--mix``) draws trained users, histories
(a user's own items, 5 to 20 of them, when the run answers history queries; else left out of the
mix), similar-item queries and bad requests (an unknown user, ``k = 0``, a body that is not JSON),
which must come back 404 / 422. The client speaks HTTP/1.1 over asyncio streams itself, so that on a
small machine the load generator takes little of the CPU the service needs; the service's own tests
use httpx.

The same queries (bad ones left out) then go through the Python API in this process, one query
per call (``Recommender.recommend([user])`` ...), and in batches of ``--clients`` queries, for the
overhead of HTTP. Latency percentiles are wall clock per request; the service's CPU time per
request is read from ``/proc`` (it moves less than wall clock when other jobs share the machine).
The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``), its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    """``python -m cbns serve`` in a subprocess, ready once ``/health`` answers."""

    def __init__(self, run: Path, flags: list[str], threads: int):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "cbns", "serve", str(run), "--port", str(self.port),
                                      "--threads", str(threads), "--log-level", "warning", *flags],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": str(threads),
                                          "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                      os.environ.get("PYTHONPATH")]))})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"cbns serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                self.health = json.loads(http_get(self.port, "/health"))
                return
            except OSError:
                time.sleep(0.3)
        self.proc.kill()
        raise SystemExit("cbns serve did not answer /health within 300 s")

    def stop(self) -> tuple[int, str]:
        """SIGTERM; ``(exit status, stderr)``."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def http_stack() -> str:
    """What uvicorn runs on here: it picks httptools and uvloop when they are importable."""
    import importlib.util

    found = [importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")]
    return " + ".join(["httptools" if found[0] else "h11", "uvloop" if found[1] else "asyncio"])


def http_get(port: int, path: str) -> str:
    """The body of ``GET path`` (a blocking one-off request, for /health)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(head.decode(errors="replace"))
    return body.decode()


def make_queries(rec, mix: dict[str, float], count: int, k: int, seed: int) -> list[tuple[str, object]]:
    """``count`` ``(kind, query)`` pairs drawn by ``mix``: users, histories, items as original ids;
    bad queries as the name of their fault."""
    rng = np.random.default_rng(seed)
    kinds = list(mix)
    drawn = rng.choice(len(kinds), size=count, p=np.array([mix[x] for x in kinds]) / sum(mix.values()))
    seen = rec.seen
    with_items = np.flatnonzero(np.diff(seen.indptr) >= 5)
    out = []
    for which in drawn:
        kind = kinds[which]
        if kind == "user":
            out.append((kind, rec.user_map.to_ids([int(rng.integers(rec.user_map.size))])[0]))
        elif kind == "similar":
            out.append((kind, rec.item_map.to_ids([int(rng.integers(rec.item_map.size))])[0]))
        elif kind == "history":
            user = int(rng.choice(with_items))
            own = seen.indices[seen.indptr[user]:seen.indptr[user + 1]]
            picked = rng.choice(own, size=min(len(own), int(rng.integers(5, 21))), replace=False)
            out.append((kind, rec.item_map.to_ids(picked).tolist()))
        else:
            out.append((kind, ("unknown user", "k = 0", "not JSON")[int(rng.integers(3))]))
    return out


def request_bytes(kind: str, query, k: int, port: int) -> bytes:
    """The HTTP/1.1 request of one query."""
    if kind == "similar":
        return f"GET /similar/{query}?k={k} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    if kind == "user":
        body = json.dumps({"user": _plain(query), "k": k})
    elif kind == "history":
        body = json.dumps({"history": [_plain(x) for x in query], "k": k})
    else:
        body = {"unknown user": json.dumps({"user": "no-such-user", "k": k}),
                "k = 0": json.dumps({"user": 0, "k": 0}), "not JSON": "{user: 1"}[query]
    data = body.encode()
    return (f"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def _plain(value):
    return value.item() if hasattr(value, "item") else value


async def one_client(port: int, requests: list[tuple[str, bytes]], start: int, until: float, record: list) -> None:
    """Send ``requests`` from index ``start`` (cycling) on one keep-alive connection until ``until``
    (``time.perf_counter``); append ``(kind, status, seconds)`` per answer to ``record``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    at = start
    try:
        while time.perf_counter() < until:
            kind, raw = requests[at % len(requests)]
            at += 1
            began = time.perf_counter()
            writer.write(raw)
            status = int((await reader.readline()).split(b" ", 2)[1])
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            record.append((kind, status, time.perf_counter() - began))
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def load(port: int, requests: list[tuple[str, bytes]], clients: int, seconds: float) -> list:
    """Run ``clients`` closed-loop clients for ``seconds``; every answer's ``(kind, status, seconds)``."""
    record: list = []

    async def main():
        until = time.perf_counter() + seconds
        stride = len(requests) // clients
        await asyncio.gather(*(one_client(port, requests, c * stride, until, record) for c in range(clients)))

    asyncio.run(main())
    return record


def summarise(record: list, seconds: float) -> dict:
    latency = np.array([r[2] for r in record]) * 1000.0
    statuses: dict[str, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    for kind, status, _ in record:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        per = kinds.setdefault(kind, {})
        per[str(status)] = per.get(str(status), 0) + 1
    p50, p95, p99 = (round(float(np.percentile(latency, q)), 2) for q in (50, 95, 99))
    return {"requests": len(record), "requests_per_s": round(len(record) / seconds, 1),
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": round(float(latency.max()), 2),
            "status": dict(sorted(statuses.items())), "by_kind": kinds,
            "errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5"))}


def python_api(rec, queries: list[tuple[str, object]], k: int, batch: int, seconds: float) -> dict:
    """The good queries through the Recommender: one per call for up to ``seconds`` (wall and CPU
    rate), and all of them in calls of ``batch`` queries of one kind."""
    good = [(kind, q) for kind, q in queries if kind in ("user", "similar", "history")]

    def ask(kind, qs):
        if kind == "user":
            return rec.recommend(qs, k=k)
        if kind == "similar":
            return rec.similar_items(qs, k=k)
        return rec.recommend_history(qs, k=k)

    done, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    for kind, q in good:
        ask(kind, [q])
        done += 1
        if time.perf_counter() - wall0 > seconds:
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    by_kind: dict[str, list] = {}
    for kind, q in good[:done]:
        by_kind.setdefault(kind, []).append(q)
    bwall0, bcpu0 = time.perf_counter(), time.process_time()
    for kind, qs in by_kind.items():
        for at in range(0, len(qs), batch):
            ask(kind, qs[at:at + batch])
    bwall, bcpu = time.perf_counter() - bwall0, time.process_time() - bcpu0
    return {"queries": done, "one_per_call_per_s": round(done / wall, 1),
            "one_per_call_cpu_ms": round(cpu / done * 1e3, 3), f"batches_of_{batch}_per_s": round(done / bwall, 1),
            f"batches_of_{batch}_cpu_ms": round(bcpu / done * 1e3, 3)}


def batch_agreement(rec, count: int, k: int, batch: int, seed: int) -> dict:
    """How far a user's top ``k`` scored alone agrees with the same user scored in a batch of
    ``batch`` random users (what micro-batching does): the share of identical lists, and the mean
    share of the alone-list found in the batched one. Through an index that excludes seen items
    they can differ, because the index is searched for ``k`` + the most seen items of any user in
    the batch, and a wider search can find items a narrower one missed."""
    rng = np.random.default_rng(seed)
    users = rec.user_map.to_ids(rng.choice(rec.user_map.size, size=count, replace=False)).tolist()
    alone = np.concatenate([rec.recommend([u], k=k).rows for u in users])
    together = np.concatenate([rec.recommend(users[at:at + batch], k=k).rows for at in range(0, count, batch)])
    same = float(np.mean([(a == b).all() for a, b in zip(alone, together)]))
    found = float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max((a >= 0).sum(), 1)
                           for a, b in zip(alone, together)]))
    return {"users": count, "identical_lists": round(same, 4), "alone_items_found": round(found, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run directory (cbns train --out)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="the service's torch and faiss threads")
    parser.add_argument("--mix", default="user=0.5,history=0.2,similar=0.2,bad=0.1",
                        help="shares of user, history, similar and bad requests")
    parser.add_argument("--scoring", default="index,exact", help="index, exact, or both comma-separated")
    parser.add_argument("--batching", default="micro,single", help="micro, single, or both comma-separated")
    parser.add_argument("--api-seconds", type=float, default=10.0, help="Python API: time for one-per-call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agreement-users", type=int, default=300,
                        help="users scored alone and in batches of --clients (0: skip)")
    parser.add_argument("--agreement-only", action="store_true", help="only the batch agreement, no load")
    args = parser.parse_args()
    for option, given, allowed in (("--scoring", args.scoring, {"index", "exact"}),
                                   ("--batching", args.batching, {"micro", "single"})):
        if not set(given.split(",")) <= allowed:
            parser.error(f"{option}: a comma-separated list of {' and '.join(sorted(allowed))}, got {given!r}")

    import torch

    from cbns.serve.recommender import Recommender

    torch.set_num_threads(args.threads)
    mix = {name: float(share) for name, share in (part.split("=") for part in args.mix.split(","))}
    have_index = (args.run / "index.faiss").is_file()
    results = []
    for scoring in args.scoring.split(","):
        if scoring == "index" and not have_index:
            print(f"# no index.faiss in {args.run}: build one with cbns index build {args.run} --kind hnsw; "
                  "index scoring left out", file=sys.stderr)
            continue
        rec = Recommender.from_run(args.run, use_index=scoring == "index")
        kinds = getattr(rec, "query_kinds", frozenset({"user"}))
        used = {name: share for name, share in mix.items() if name != "history" or "history" in kinds}
        if used != mix:
            print("# this run answers no history queries: history left out of the mix", file=sys.stderr)
        queries = make_queries(rec, used, 50_000, args.k, args.seed)
        agreement = (batch_agreement(rec, min(args.agreement_users, rec.user_map.size), args.k, args.clients, args.seed)
                     if args.agreement_users else None)
        scoring_name = rec.index.spec.describe() if rec.index is not None else "exact"
        print(f"# {scoring_name}: users alone against in batches of {args.clients}: {agreement}", file=sys.stderr,
              flush=True)
        if args.agreement_only:
            results.append({"scoring": scoring_name, "batch_agreement": agreement})
            continue
        for batching in args.batching.split(","):
            flags = (["--exact"] if scoring == "exact" else []) + (["--max-batch", "1"] if batching == "single" else [])
            service = Service(args.run, flags, args.threads)
            requests = [(kind, request_bytes(kind, q, args.k, service.port)) for kind, q in queries]
            load(service.port, requests, args.clients, args.warmup)
            before = json.loads(http_get(service.port, "/health"))["batching"]
            cpu0 = process_cpu_seconds(service.proc.pid)
            record = load(service.port, requests, args.clients, args.seconds)
            cpu = process_cpu_seconds(service.proc.pid) - cpu0
            after = json.loads(http_get(service.port, "/health"))["batching"]
            status, err = service.stop()
            summary = summarise(record, args.seconds)
            batches = after["batches"] - before["batches"]
            scored = after["requests"] - before["requests"]
            entry = {"scoring": service.health["scoring"], "batching": batching, "flags": flags,
                     "batch_agreement": agreement,
                     "http": http_stack(), **summary,
                     "mean_batch": round(scored / max(batches, 1), 2),
                     "service_cpu_ms_per_request": round(cpu / max(len(record), 1) * 1e3, 3),
                     "exit_status": status, "traceback": "Traceback" in err}
            results.append(entry)
            print(f"# {entry['scoring']:<45} {batching:<6} {entry['requests_per_s']:8.1f} req/s  "
                  f"p50 {entry['p50_ms']:6.2f}  p95 {entry['p95_ms']:6.2f}  p99 {entry['p99_ms']:6.2f} ms  "
                  f"batch {entry['mean_batch']:5.2f}  cpu {entry['service_cpu_ms_per_request']:.3f} ms/req  "
                  f"status {entry['status']}  exit {status}", file=sys.stderr, flush=True)
        api = python_api(rec, queries, args.k, args.clients, args.api_seconds)
        for entry in results:
            if entry["scoring"] == service.health["scoring"]:
                entry["python_api"] = api
                entry["api_over_http"] = round(api["one_per_call_per_s"] / entry["requests_per_s"], 2)
        print(f"# python api, {service.health['scoring']}: {api}", file=sys.stderr, flush=True)
    print(json.dumps({"run": str(args.run), "clients": args.clients, "seconds": args.seconds, "k": args.k,
                      "threads": args.threads, "mix": mix, "cores": os.cpu_count(),
                      "load_average": os.getloadavg(), "results": results}))


if __name__ == "__main__":
    main()
