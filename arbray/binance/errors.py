"""Binance USD-M error codes and what a client must do about each, as one table.

The simulator answers with these codes and HTTP statuses; the venue and feed clients map a code
to an ``Action`` instead of parsing messages (Binance: "codes are universal, messages can vary").
``reconcile`` means the request's outcome is unknown (it may have executed): query the order by
its client id before doing anything else, never resend blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["retry", "backoff", "reconcile", "reject", "auth", "not_found", "duplicate", "fatal"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One Binance error: ``code`` (negative), name, HTTP status the exchange uses, client action."""

    code: int
    name: str
    http_status: int
    action: Action
    message: str


ERRORS: dict[int, ErrorCode] = {
    e.code: e
    for e in (
        ErrorCode(-1000, "UNKNOWN", 500, "retry", "An unknown error occurred while processing the request."),
        ErrorCode(-1001, "DISCONNECTED", 500, "retry", "Internal error; unable to process your request."),
        ErrorCode(-1003, "TOO_MANY_REQUESTS", 429, "backoff",
                  "Too many requests; current limit is %s requests per minute."),
        ErrorCode(-1006, "UNEXPECTED_RESP", 500, "reconcile",
                  "An unexpected response was received from the message bus. Execution status unknown."),
        ErrorCode(-1007, "TIMEOUT", 408, "reconcile",
                  "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
        ErrorCode(-1008, "SERVER_BUSY", 503, "retry", "Server is currently overloaded with other requests."),
        ErrorCode(-1015, "TOO_MANY_ORDERS", 429, "backoff", "Too many new orders; current limit is %s orders per %s."),
        ErrorCode(-1021, "INVALID_TIMESTAMP", 400, "auth", "Timestamp for this request is outside of the recvWindow."),
        ErrorCode(-1022, "INVALID_SIGNATURE", 400, "auth", "Signature for this request is not valid."),
        ErrorCode(-1100, "ILLEGAL_CHARS", 400, "reject", "Illegal characters found in a parameter."),
        ErrorCode(-1102, "MANDATORY_PARAM_EMPTY_OR_MALFORMED", 400, "reject",
                  "A mandatory parameter was not sent, was empty/null, or malformed."),
        ErrorCode(-1106, "PARAM_NOT_REQUIRED", 400, "reject", "A parameter was sent when not required."),
        ErrorCode(-1111, "BAD_PRECISION", 400, "reject", "Precision is over the maximum defined for this asset."),
        ErrorCode(-1116, "INVALID_ORDER_TYPE", 400, "reject", "Invalid orderType."),
        ErrorCode(-1117, "INVALID_SIDE", 400, "reject", "Invalid side."),
        ErrorCode(-1121, "BAD_SYMBOL", 400, "reject", "Invalid symbol."),
        ErrorCode(-1125, "INVALID_LISTEN_KEY", 400, "not_found", "This listenKey does not exist."),
        ErrorCode(-2010, "NEW_ORDER_REJECTED", 400, "reject", "NEW_ORDER_REJECTED"),
        ErrorCode(-2011, "CANCEL_REJECTED", 400, "not_found", "CANCEL_REJECTED"),
        ErrorCode(-2013, "NO_SUCH_ORDER", 400, "not_found", "Order does not exist."),
        ErrorCode(-2014, "BAD_API_KEY_FMT", 401, "auth", "API-key format invalid."),
        ErrorCode(-2015, "REJECTED_MBX_KEY", 401, "auth", "Invalid API-key, IP, or permissions for action."),
        ErrorCode(-2019, "MARGIN_NOT_SUFFICIEN", 400, "reject", "Margin is insufficient."),
        ErrorCode(-2022, "REDUCE_ONLY_REJECT", 400, "reject", "ReduceOnly Order is rejected."),
        ErrorCode(-4003, "QTY_LESS_THAN_ZERO", 400, "reject", "Quantity less than or equal to zero."),
        ErrorCode(-4014, "PRICE_NOT_INCREASED_BY_TICK_SIZE", 400, "reject", "Price not increased by tick size."),
        ErrorCode(-4023, "QTY_NOT_INCREASED_BY_STEP_SIZE", 400, "reject", "Qty not increased by step size."),
        ErrorCode(-4015, "CLIENT_ORDER_ID_INVALID", 400, "reject", "Client order id is not valid."),
        ErrorCode(-4116, "DUPLICATED_CLIENT_ORDER_ID", 400, "duplicate", "ClientOrderId is duplicated."),
        ErrorCode(-4164, "MIN_NOTIONAL", 400, "reject", "Order's notional must be no smaller than %s."),
        ErrorCode(-5021, "FOK_ORDER_REJECT", 400, "reject",
                  "Due to the order could not be filled immediately, the FOK order has been rejected."),
        ErrorCode(-5022, "GTX_ORDER_REJECT", 400, "reject",
                  "Due to the order could not be executed as maker, the Post Only order will be rejected."),
        ErrorCode(-1115, "INVALID_TIF", 400, "reject", "Invalid timeInForce."),
        ErrorCode(-1130, "INVALID_PARAMETER", 400, "reject", "Data sent for parameter '%s' is not valid."),
        ErrorCode(-1136, "INVALID_NEW_ORDER_RESP_TYPE", 400, "reject", "Invalid newOrderRespType."),
        ErrorCode(-2025, "MAX_OPEN_ORDER_EXCEEDED", 400, "reject", "Reach max open order limit."),
        ErrorCode(-4001, "PRICE_LESS_THAN_ZERO", 400, "reject", "Price less than 0."),
        ErrorCode(-4028, "INVALID_LEVERAGE", 400, "reject", "Leverage %s is not valid"),
        ErrorCode(-4061, "POSITION_SIDE_NOT_MATCH", 400, "reject",
                  "Order's position side does not match user's setting."),
    )
}

IP_BANNED_HTTP = 418
"""HTTP status of an IP ban after repeated 429s (Binance sends -1003 "IP banned until …")."""


def action_for(code: int | None, http_status: int) -> Action:
    """What to do about a failed request: by error code when there is one, else by HTTP status."""
    if code is not None and code in ERRORS:
        return ERRORS[code].action
    if http_status in (429, IP_BANNED_HTTP):
        return "backoff"
    if http_status in (408, 503, 504):  # sent, but no answer in time: execution status unknown
        return "reconcile"
    if http_status >= 500:
        return "retry"
    if http_status in (401, 403):
        return "auth"
    return "fatal" if code is None else "reject"


def error_body(code: int, *args: object) -> dict[str, object]:
    """Binance's error JSON ``{"code": …, "msg": …}`` with the message's ``%s`` filled in."""
    e = ERRORS[code]
    msg = e.message % args if args and "%s" in e.message else e.message
    return {"code": code, "msg": msg}
