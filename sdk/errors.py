"""The shape of every OneCard error (STYLE.md "Errors").

One class per wire code. Class attributes carry the code, a description that is safe to show anyone and
the HTTP status; ``detail`` is private: logged for operators, never sent. OAuth endpoints raise Authlib's
own error classes, which have the same shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OneCardError(Exception):
    """Base of all OneCard errors with a wire code."""

    error: ClassVar[str] = "server_error"
    description: ClassVar[str] = "Something went wrong."
    status_code: ClassVar[int] = 500

    def __init__(self, detail: str = "", *, description: str | None = None) -> None:
        super().__init__(detail or self.description)
        self.detail = detail
        if description is not None:
            # An instance may narrow the public description, never widen it with private data.
            self.description = description  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequestError(OneCardError):
    error = "invalid_request"
    description = "The request is missing a parameter or has a malformed one."
    status_code = 400


class NotFoundError(OneCardError):
    error = "not_found"
    description = "No such object."
    status_code = 404


class ConflictError(OneCardError):
    error = "conflict"
    description = "The request conflicts with the current state."
    status_code = 409


class UnauthorizedError(OneCardError):
    error = "unauthorized"
    description = "Authentication is required."
    status_code = 401


class ForbiddenError(OneCardError):
    error = "forbidden"
    description = "You are not allowed to do this."
    status_code = 403


class RateLimitedError(OneCardError):
    """The one refusal for every rate limit; ``retry_after`` (seconds) becomes the Retry-After header."""

    error = "rate_limited"
    description = "Too many attempts. Please wait a moment and try again."
    status_code = 429

    def __init__(
        self, detail: str = "", *, retry_after: int | None = None, description: str | None = None
    ) -> None:
        super().__init__(detail, description=description)
        self.retry_after = retry_after
        self.headers: dict[str, str] = {} if retry_after is None else {"Retry-After": str(retry_after)}
