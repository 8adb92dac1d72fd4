"""``cbns serve RUN_OR_BUNDLE``: the HTTP service (FastAPI + uvicorn) over a run directory or a
bundle written by ``cbns export`` (served without importing torch).

The run is loaded, checked (a stale index, damaged embeddings or a bundle file whose checksum
fails end in one ``cbns: error:`` line) and warmed up before the port is opened. SIGTERM and
SIGINT stop the service gracefully: requests in flight are answered, the batcher is stopped, and
the command exits with status 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from cbns.cli.options import add_device_option


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Serve a run over HTTP: POST /recommend (a trained user, a history of items or user "
                     "attributes), GET /similar/{item}, GET /health, OpenAPI docs at /docs. Concurrent "
                     "requests are scored together in micro-batches.")
    p.add_argument("source", metavar="RUN_OR_BUNDLE", help="a directory written by cbns train or cbns export")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes, each loading the run and answering requests (default: %(default)s)")
    p.add_argument("--exact", action="store_true", help="score every item even when an index was built")
    p.add_argument("--max-batch", type=int, default=64, metavar="N",
                   help="most requests scored together; 1 = one at a time (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=2.0, metavar="MS",
                   help="how long a request waits for others to join its batch (default: %(default)s)")
    p.add_argument("--max-k", type=int, default=1000, metavar="K",
                   help="the largest k a request may ask (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch and faiss threads per worker, 0 = all cores")
    p.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs "
                                                              "time under load)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default: %(default)s)")
    add_device_option(p, "cpu")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from cbns.errors import CbnsError
    from cbns.serve.http.loading import SETTINGS_VARIABLE, ServeSettings, build_app

    if args.workers < 1:
        raise CbnsError(f"--workers: must be >= 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise CbnsError(f"--port: must be between 0 and 65535, got {args.port}")
    settings = ServeSettings(args.source, exact=args.exact, device=args.device, threads=args.threads,
                             max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_k=args.max_k).check()
    import uvicorn

    sock = _bind(args.host, args.port)
    common = dict(log_level=args.log_level, access_log=args.access_log, timeout_graceful_shutdown=10)
    if args.workers == 1:
        rec, app = build_app(settings, process_settings=True)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, **common))
        _say_serving(rec, settings, args.host, port, 1)
        with _graceful_signals():
            server.run(sockets=[sock])
        if not server.started:
            raise CbnsError("the service did not start; see the lines above")
        return 0
    # once here, so that a bad run ends in one line before any worker starts
    rec, _ = build_app(settings, process_settings=True)
    _say_serving(rec, settings, args.host, args.port, args.workers)
    del rec
    sock.close()
    os.environ[SETTINGS_VARIABLE] = settings.to_environment()
    with _graceful_signals():
        uvicorn.run("cbns.serve.http.loading:app_from_environment", factory=True, host=args.host,
                    port=args.port, workers=args.workers, **common)
    return 0


def _say_serving(rec, settings, host: str, port: int, workers: int) -> None:
    scoring = rec.index.spec.describe() if getattr(rec, "index", None) is not None else "exact scoring"
    shown = f"[{host}]" if ":" in host else host
    print(f"cbns: serving {settings.source} ({rec.user_map.size:,} users, {rec.item_map.size:,} items, {scoring}, "
          f"{workers} worker{'s' if workers > 1 else ''}) on http://{shown}:{port} (docs: /docs)",
          file=sys.stderr, flush=True)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; :class:`CbnsError` naming them when it cannot be had."""
    from cbns.errors import CbnsError

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise CbnsError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


class _graceful_signals:
    """While the server runs, SIGINT and SIGTERM are uvicorn's (a graceful shutdown); the handlers
    it restores and calls again afterwards are made quiet here, so the command ends with status 0
    instead of the one-line interruption of the other commands (:mod:`cbns.cli.signals`)."""

    def __enter__(self):
        self.received: list[int] = []
        self.previous = {s: signal.signal(s, lambda signum, frame: self.received.append(signum))
                         for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if self.received:
            print(f"cbns: serve: stopped by {signal.Signals(self.received[0]).name}", file=sys.stderr)
        return False
