"""Opening what ``cbns serve`` serves, once per process, and the app factory of its workers.

``cbns serve --workers N`` (N > 1) lets uvicorn start N processes that share the listening socket;
each one imports the app through :func:`app_from_environment`, which reads the settings the parent
put in the environment variable :data:`SETTINGS_VARIABLE` and loads the run (or bundle) itself,
so N workers hold N copies of the vectors.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from cbns.errors import CbnsError

#: The environment variable through which ``cbns serve --workers N`` hands its settings to the workers.
SETTINGS_VARIABLE = "CBNS_SERVE_SETTINGS"

#: The GIL switch interval of a ``cbns serve`` process, in seconds (Python's default: 0.005). The
#: scoring thread holds the GIL while it turns a batch's answers into JSON; with the default the
#: event loop (which reads requests and writes answers) can wait up to 5 ms for it at each turn.
#: On the tiny test run with 16 clients, 0.5 ms served 1.6-1.8x more requests per second, side by
#: side with the default. Set by the command line and its workers only.
SWITCH_INTERVAL_S = 0.0005


@dataclass
class ServeSettings:
    """What to serve and how: the source (a run directory or a bundle written by ``cbns export``),
    exact scoring even when an index was built, the torch device of a run's exact scoring (a bundle
    scores with numpy), threads (0 = every core), micro-batching and the largest ``k``."""

    source: str
    exact: bool = False
    device: str = "cpu"
    threads: int = 0
    max_batch: int = 64
    max_wait_ms: float = 2.0
    max_k: int = 1000

    def check(self) -> ServeSettings:
        """:class:`CbnsError` naming the option when a value is out of range."""
        for name, low in (("threads", 0), ("max_batch", 1), ("max_k", 1)):
            if getattr(self, name) < low:
                raise CbnsError(f"--{name.replace('_', '-')}: must be >= {low}, got {getattr(self, name)}")
        if not self.max_wait_ms >= 0:
            raise CbnsError(f"--max-wait-ms: must be >= 0, got {self.max_wait_ms}")
        return self

    def to_environment(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_VARIABLE)
        if not text:
            raise CbnsError(f"{SETTINGS_VARIABLE} is not set: this factory is for the workers of cbns serve")
        return cls(**json.loads(text)).check()


def open_recommender(settings: ServeSettings, process_settings: bool = False):
    """The Recommender of ``settings.source``, its seen items loaded and one query of each kind
    scored (so the first request pays no loading); a damaged or stale source raises
    :class:`CbnsError` here, before the service accepts a request. With ``process_settings`` (the
    command line's processes only) the threads and the GIL switch interval of this process are set."""
    source = Path(settings.source)
    if not source.exists():
        raise CbnsError(f"{source}: no such run directory or bundle")
    from cbns.serve.bundle import MANIFEST, load_bundle

    if (source / MANIFEST).is_file():  # checksums verified, numpy/faiss/onnxruntime: no torch
        rec = load_bundle(source, use_index=not settings.exact, threads=settings.threads)
    else:
        from cbns.serve.recommender import Recommender

        rec = Recommender.from_run(source, use_index=not settings.exact, device=settings.device)
    if process_settings:
        pin_threads(settings.threads)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    warm_up(rec)
    return rec


def pin_threads(threads: int) -> int:
    """Pin faiss's threads and, when serving imported it, torch's, to ``threads`` (0 = every core
    of this process); returns the count. Torch is not imported here for a source that does not
    need it."""
    n = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import faiss
    except ImportError:
        return n
    faiss.omp_set_num_threads(n)
    return n


def warm_up(rec) -> None:
    """Load what the first queries would (seen items, device copies) by scoring one of each."""
    if getattr(rec, "_load_seen", None) is not None:
        rec.seen  # noqa: B018 (loads the CSR once)
        rec.recommend_rows([0], 1, True)
    rec.recommend_rows([0], 1, False)
    first_item = rec.item_map.to_ids([0]).tolist()
    if rec.item_map.size > 1:
        rec.similar_items(first_item, 1)
    if "history" in rec.query_kinds:  # a tower encoder reads model.pt on its first query
        rec.recommend_history([first_item], 1)
    if "features" in rec.query_kinds:
        rec.recommend_features([{}], 1)  # every attribute missing


def build_app(settings: ServeSettings, process_settings: bool = False):
    """``(recommender, app)`` for ``settings`` (``process_settings``: see :func:`open_recommender`)."""
    from cbns.serve.http.app import create_app

    settings.check()
    rec = open_recommender(settings, process_settings)
    app = create_app(rec, source=str(settings.source), max_batch=settings.max_batch,
                     max_wait_ms=settings.max_wait_ms, max_k=settings.max_k)
    return rec, app


def app_from_environment():
    """The app of one worker of ``cbns serve --workers N`` (uvicorn calls it in each worker
    process, which the command line started: so it sets the threads and the switch interval there)."""
    return build_app(ServeSettings.from_environment(), process_settings=True)[1]
