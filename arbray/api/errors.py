"""One error shape for every failure: ``{"detail": "…"}``, or for 422 a list of field errors.

Validation errors keep pydantic's ``loc``/``msg``/``type`` and drop the echoed input (a request
body is never reflected back). A strategy config validated by its kind's model reports its
errors under ``["body", "config", field]`` like any other body field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import ErrorDetails

from arbray.runtime.control import RuntimeUnavailable

RUNTIME_DOWN = "runtime not running"
JOBS_DOWN = "jobs not available"


class ErrorResponse(BaseModel):
    """Every non-validation error."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "strategy not found"}]})
    detail: str


class FieldError(BaseModel):
    """One invalid field: where (``["body", "config", "weight_env"]``), why, and the error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """422: every invalid field of the request."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": [
        {"loc": ["body", "config", "weight_direction"], "msg": "weights must sum to 100, got 105",
         "type": "cross_field"}]}]})
    detail: list[FieldError] = Field(min_length=1)


class FieldErrors(Exception):
    """Raised by a handler whose own validation (beyond the request model) failed."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = list(errors)


def field_errors(errors: Iterable[ErrorDetails | dict[str, Any]], prefix: Sequence[str | int] = ()) -> FieldErrors:
    """``FieldErrors`` of pydantic error details, each ``loc`` prefixed (e.g. ``("body", "config")``)."""
    return FieldErrors([{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors])


def one_field_error(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> FieldErrors:
    """``FieldErrors`` with a single error."""
    return FieldErrors([{"loc": list(loc), "msg": msg, "type": type_}])


def _clean(errors: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else getattr(exc, "errors", [])
    return JSONResponse(status_code=422, content={"detail": _clean(errors)})


async def _runtime_down(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": RUNTIME_DOWN})


def install_error_handlers(app: FastAPI) -> None:
    """Register the 422 and 503 handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(FieldErrors, _validation)
    app.add_exception_handler(RuntimeUnavailable, _runtime_down)


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid bearer token"},
    429: {"model": ErrorResponse, "description": "too many failed authentications from this client"},
}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    403: {"model": ErrorResponse, "description": "the token's role may not do this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "no such resource"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationErrorResponse,
                                                  "description": "invalid fields"}}
RUNTIME: dict[int | str, dict[str, Any]] = {503: {"model": ErrorResponse, "description": RUNTIME_DOWN}}
