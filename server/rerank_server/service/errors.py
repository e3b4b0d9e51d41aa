"""One place that decides which gRPC status code every failure becomes."""

from __future__ import annotations

import logging

import grpc

from ..batching import BatcherClosed, DeadlineExceeded, QueueFull, WouldMissDeadline
from ..engine import NotServing, TooManyRequests, UnknownModel
from ..models.windows import UnscorableInput

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the server will not run, with the status code and message the caller gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RequestError:
    """An INVALID_ARGUMENT error."""
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failure is reported with.

    Anything unexpected (a model that raised) is INTERNAL with its one-line reason; the traceback goes
    to the server log, never to the caller.
    """
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, UnscorableInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, UnknownModel):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, NotServing):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, (QueueFull, TooManyRequests)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, WouldMissDeadline) and exc.default_deadline:
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)  # the server's own deadline: overload, not the caller's
    if isinstance(exc, DeadlineExceeded):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, BatcherClosed):
        return grpc.StatusCode.UNAVAILABLE, f"{exc}; retry on another replica"
    log.error("request failed in the model", exc_info=exc)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return grpc.StatusCode.INTERNAL, f"the model failed on a batch holding this request: {reason}"
