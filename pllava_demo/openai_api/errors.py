"""Errors in OpenAI's JSON shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP status
the official API uses for each class, so every OpenAI client raises its own matching exception
(BadRequestError, AuthenticationError, RateLimitError, ...).

Knows no HTTP framework: a route turns an `ApiError` into a response with `status` and `body()`.
"""

from __future__ import annotations

from dataclasses import dataclass

# status -> OpenAI's error type for it
TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "service_unavailable"}


@dataclass(eq=False)
class ApiError(Exception):
    """One request refused or failed; `message` is one sentence a person can read."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None

    def __post_init__(self):
        super().__init__(self.message)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """400: the request names something wrong (the field is `param`)."""
    return ApiError(400, message, param, code)
