"""The HTTP service over a loaded :class:`cbns.serve.recommender.Recommender`: a FastAPI app.

Routes: ``POST /recommend`` (a user, a history or user attributes), ``GET /similar/{item}``,
``GET /health``; the OpenAPI docs at ``/docs`` (schema at ``/openapi.json``). Every answer is JSON.
Client mistakes never end in a 500:

* an id the run does not have: 404 (:class:`cbns.errors.UnknownIdError`);
* a body that is not JSON, misses fields, has unknown ones or values of the wrong type: 422;
* ``k`` outside ``1..max_k``: 422;
* a query kind the run cannot answer (a history for a run without a history encoder): 422;
* any other :class:`cbns.errors.CbnsError` raised by the query (e.g. an attribute value the
  features tower does not know): 422.

Errors read ``{"detail": "one line"}``; a 422 from the body's validation adds ``errors``, the
list pydantic made. Requests are scored through :class:`cbns.serve.http.batcher.MicroBatcher`:
concurrent requests of one kind and ``k`` go through one Recommender call.

This module does not import torch: whether serving needs it is the Recommender's business (a run
directory scores with torch, a bundle without).
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from cbns import __version__
from cbns.errors import CbnsError, UnknownIdError
from cbns.serve.http.batcher import MicroBatcher
from cbns.serve.http.queries import batch_scorer
from cbns.serve.http.schemas import ErrorResponse, HealthResponse, RecommendRequest, RecommendResponse, SimilarResponse
from cbns.serve.query_kinds import QUERY_KINDS, cannot_answer

log = logging.getLogger("cbns.serve")

DEFAULT_MAX_K = 1000

_ERRORS = {404: {"model": ErrorResponse, "description": "an unknown user or item id"},
           422: {"model": ErrorResponse, "description": "a malformed body, k out of range, or a query kind "
                                                         "this run cannot answer"}}


class ClientError(Exception):
    """A request the service refuses with ``status`` and a one-line ``detail``."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def create_app(recommender, *, source: str = "", max_batch: int = 64, max_wait_ms: float = 2.0,
               max_k: int = DEFAULT_MAX_K) -> FastAPI:
    """The app serving ``recommender``; the batcher starts and stops with the app's lifespan.

    Args:
        source: the run directory or bundle it was loaded from (shown by ``/health``).
        max_batch, max_wait_ms: micro-batching (:class:`MicroBatcher`); ``max_batch=1`` scores one
            request at a time.
        max_k: the largest ``k`` a request may ask (capped at the number of items).
    """
    batcher = MicroBatcher(batch_scorer(recommender), max_batch=max_batch, max_wait_s=max_wait_ms / 1000.0)
    kinds = recommender.query_kinds
    kinds_listed = [k for k in QUERY_KINDS if k in kinds]
    items = recommender.item_map.size
    max_k = min(max_k, items)
    scoring = recommender.index.spec.describe() if getattr(recommender, "index", None) is not None else "exact"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="cbns", version=__version__, lifespan=lifespan,
                  description="Top-K items from a two-tower run: for a trained user, a history of items, or "
                              "user attributes; and similar items. Ids are the run's original ids.")
    app.state.recommender, app.state.batcher = recommender, batcher

    def check_k(k: int) -> None:
        if not 1 <= k <= max_k:
            raise ClientError(422, f"k: must be between 1 and {max_k}, got {k}")

    @app.post("/recommend", response_model=RecommendResponse, responses=_ERRORS)
    async def recommend(body: RecommendRequest) -> Response:
        """Top ``k`` items for one query: exactly one of ``user``, ``history``, ``features``."""
        check_k(body.k)
        kind = body.kind
        if kind not in kinds:
            raise ClientError(422, str(cannot_answer(kind, kinds)))
        user = None
        if kind == "user":
            row = int(recommender.user_map.to_rows(body.user, "user")[0])
            user = _plain(recommender.user_map.to_ids([row])[0])
            items = await batcher.submit(("user", body.k, body.exclude_seen), row)
        elif kind == "history":
            recommender.item_map.to_rows(body.history, "history item")  # an unknown id is this request's 404
            items = await batcher.submit(("history", body.k, body.exclude_seen), tuple(body.history))
        else:
            items = await batcher.submit(("features", body.k), body.features)
        return _json({"query": kind, "user": user, "items": items})

    @app.get("/similar/{item}", response_model=SimilarResponse, responses=_ERRORS)
    async def similar(item: str = Path(description="an item id of the run"),
                      k: int = Query(20, description="items to return, 1 to max_k")) -> Response:
        """The ``k`` items whose vectors are closest to ``item``'s (itself left out)."""
        check_k(k)
        row = int(recommender.item_map.to_rows(item, "item")[0])
        canonical = _plain(recommender.item_map.to_ids([row])[0])
        items = await batcher.submit(("similar", k), canonical)
        return _json({"item": canonical, "items": items})

    @app.get("/health", response_model=HealthResponse)
    async def health() -> Response:
        """What is served, and what the batcher did so far."""
        return _json({"status": "ok", "source": source, "users": recommender.user_map.size, "items": items,
                      "dim": int(recommender.items.shape[1]), "scoring": scoring, "query_kinds": kinds_listed,
                      "max_k": max_k, "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms,
                                                   **batcher.stats.as_json()}})

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if (len(errors) == 1 and tuple(errors[0].get("loc", ())) == ("body",)
                and isinstance(errors[0].get("input"), (bytes, str))):  # FastAPI reads JSON by its content type
            return JSONResponse({"detail": "body: not read as JSON; send a JSON object with the header "
                                           "Content-Type: application/json"}, status_code=422)
        detail = _one_line(errors)
        return JSONResponse({"detail": detail, "errors": jsonable_encoder(errors, custom_encoder={
            Exception: str})}, status_code=422)

    @app.exception_handler(ClientError)
    async def refused(request: Request, exc: ClientError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(CbnsError)
    async def bad_query(request: Request, exc: CbnsError) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownIdError) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("cbns serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    return app


def _json(payload: dict) -> Response:
    """JSON without the response model's validation pass (the payload is built here, in that shape)."""
    return Response(json.dumps(payload, allow_nan=False, separators=(",", ":")).encode(),
                    media_type="application/json")


def _one_line(errors: list[dict]) -> str:
    """Pydantic's errors as one line: ``body.k: Input should be a valid integer; ...``; the two
    errors of an id that is neither an integer nor a string become one, a JSON syntax error says
    where it is."""
    parts, said = [], set()
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        if e.get("type") == "json_invalid":
            reason = e.get("ctx", {}).get("error", "decode error")
            parts.append(f"body: not valid JSON at character {loc[-1]} ({reason})")
            continue
        if loc and loc[-1] in ("int", "str") and e.get("type") in ("int_type", "string_type"):
            where = ".".join(loc[:-1])
            if where not in said:
                said.add(where)
                parts.append(f"{where}: an id is a JSON integer or string, got {json.dumps(e.get('input'))}")
            continue
        parts.append(f"{'.'.join(loc)}: {e.get('msg', 'invalid')}")
    return "; ".join(parts[:3]) + (f" (and {len(parts) - 3} more)" if len(parts) > 3 else "")


def _plain(value):
    return value.item() if hasattr(value, "item") else value
