"""The JSON bodies of the HTTP service, as pydantic models (they also make its OpenAPI schema).

Ids are original ids as the run spells them (:mod:`cbns.serve.id_map`): JSON integers or strings;
an integer-id run also finds ``"42"``. Booleans and floats are not ids, and ``k`` is a JSON integer
(``"5"``, ``5.0`` and ``true`` are refused), so a client's mistake is a 422, never a guess.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

Id = StrictInt | StrictStr


class RecommendRequest(BaseModel):
    """Exactly one of ``user``, ``history``, ``features``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"user": 42, "k": 10}, {"history": [1302, 1636, 1260], "k": 10}, {"features": {"age": 25}, "k": 10}]})

    user: Id | None = Field(None, description="a user the run was trained on")
    history: list[Id] | None = Field(None, min_length=1, description="item ids, oldest first, encoded by the "
                                     "run's user tower at request time")
    features: dict[str, Any] | None = Field(None, description="user attributes by name, for a features tower")
    k: StrictInt = Field(20, description="items to return, 1 to the service's max_k (see /health)")
    exclude_seen: StrictBool = Field(True, description="leave out the user's train and validation items "
                                     "(for a history query: its own items)")

    @model_validator(mode="after")
    def _one_query(self) -> RecommendRequest:
        given = [name for name in ("user", "history", "features") if getattr(self, name) is not None]
        if len(given) != 1:
            said = "none" if not given else " and ".join(given)
            raise ValueError(f"give exactly one of user, history, features (got {said})")
        return self

    @property
    def kind(self) -> str:
        return "user" if self.user is not None else "history" if self.history is not None else "features"


class ScoredItem(BaseModel):
    item: int | str
    score: float


class RecommendResponse(BaseModel):
    query: str = Field(description="user, history or features")
    user: int | str | None = Field(None, description="the user, for a user query (as the run spells it)")
    items: list[ScoredItem] = Field(description="best first; fewer than k only when fewer items are left")


class SimilarResponse(BaseModel):
    item: int | str
    items: list[ScoredItem]


class ErrorResponse(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


class HealthResponse(BaseModel):
    status: str
    source: str
    users: int
    items: int
    dim: int
    scoring: str
    query_kinds: list[str]
    max_k: int
    batching: dict[str, float | int]
