"""What every fragment of the contract shares: the one error shape (``components/schemas/Error``), the error
responses that reference it, the security schemes, and the builders fragments are written with.

The error shape is the one every OneCard error already has (``sdk.errors.OneCardError.to_dict``, rendered by
``idp.web.json_error``): OAuth's ``{"error", "error_description"}`` (RFC 6749 §5.2), ``error`` a machine code
named by the domain's error class, ``error_description`` safe to show anyone.
"""

from __future__ import annotations

from typing import Any, Final

from idp.scopes import ADMIN, GATE_VERIFY, HALL_COUNTER, REALNAME_VERIFY
from idp.web import BROWSER_COOKIE, LARGEST_INTEGER_ARG, SESSION_COOKIE

JsonObject = dict[str, Any]

ERROR_SCHEMA: Final[JsonObject] = {
    "title": "Error",
    "description": (
        "Every refusal of every JSON API: an OAuth-style error (RFC 6749 §5.2). `error` is a machine code; "
        "`error_description` is safe to show anyone and never carries a submitted value."
    ),
    "type": "object",
    "required": ["error", "error_description"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "pattern": "^[a-z0-9_]+$", "examples": ["invalid_request"]},
        "error_description": {"type": "string"},
        "reason": {
            "type": "string",
            "description": "Why a presented code was refused (`invalid_code` only): essc1.md §3.",
        },
    },
}

# Status → (component name, description). Every error response of every operation is one of these.
_ERROR_RESPONSES: Final[dict[int, tuple[str, str]]] = {
    400: (
        "BadRequest",
        "The request is malformed or outside the contract (`invalid_request`), or a domain "
        "rule refused a field (the code names it, e.g. `invalid_venue`).",
    ),
    401: ("Unauthorized", "Credentials are missing or not valid. `WWW-Authenticate` names the scheme."),
    403: ("Forbidden", "Authenticated, but not allowed to do this (`forbidden`, or a domain code)."),
    404: ("NotFound", "No such object."),
    409: ("Conflict", "The object's current state does not allow this change."),
    429: (
        "TooManyRequests",
        "Over a rate limit (`rate_limited`); `Retry-After` says how many seconds to wait.",
    ),
    503: ("ServiceUnavailable", "Temporarily unable to answer (`temporarily_unavailable`); try again later."),
}
_ERROR_HEADERS: Final[dict[int, JsonObject]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme and realm to authenticate with (RFC 7235 §4.1); for a DPoP "
            "request the `DPoP` scheme with the error and the accepted `algs` (RFC 9449 §7.1).",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}

# Security scheme names, as operations' ``security`` requirements reference them.
SERVICE_TOKEN: Final = "serviceToken"
VENUE_CREDENTIALS: Final = "venueCredentials"
WALLET_SESSION: Final = "walletSession"
BROWSER_BINDING: Final = "browserBinding"
CSRF_TOKEN: Final = "csrfToken"
CSRF_HEADER: Final = "X-CSRF-Token"

Security = list[dict[str, list[str]]]
PUBLIC: Final[Security] = []
VENUE: Final[Security] = [{VENUE_CREDENTIALS: []}]
# The wallet's JSON calls from its own pages: the SSO session cookie, and for a change the page's CSRF token.
SIGNED_IN_CITIZEN: Final[Security] = [{WALLET_SESSION: []}]
SIGNED_IN_PAGE: Final[Security] = [{WALLET_SESSION: [], BROWSER_BINDING: [], CSRF_TOKEN: []}]
# Calls from a page inside a browser flow (a login transaction, a QR channel): this browser, this page.
BROWSER_PAGE: Final[Security] = [{BROWSER_BINDING: [], CSRF_TOKEN: []}]
BROWSER: Final[Security] = [{BROWSER_BINDING: []}]


def service_token(scope: str) -> Security:
    """A client_credentials access token carrying ``scope`` (``idp.oauth.resource.require_scope``)."""
    return [{SERVICE_TOKEN: [scope]}]


def security_schemes(token_url: str) -> JsonObject:
    return {
        SERVICE_TOKEN: {
            "type": "oauth2",
            "description": (
                "An access token from the client_credentials grant, sent as `Authorization: Bearer …` "
                "(RFC 6750), or, when it is DPoP-bound (`token_type` `DPoP`), as `Authorization: DPoP …` "
                "with a `DPoP` proof of its key (RFC 9449 §7). Register an `operator` client with the "
                "scope the operation names."
            ),
            "flows": {
                "clientCredentials": {
                    "tokenUrl": token_url,
                    "scopes": {
                        ADMIN: "The admin APIs: clients, citizens, cards, keys, venues, statistics.",
                        REALNAME_VERIFY: "The real-name verification API.",
                        HALL_COUNTER: "A service hall counter's calls: its registered `device` client "
                        "(private_key_jwt only, RFC 7523 §2.2), bound to that one counter.",
                    },
                }
            },
        },
        VENUE_CREDENTIALS: {
            "type": "http",
            "scheme": "basic",
            "description": (
                f"A venue's gate credentials (a `venue` client with `{GATE_VERIFY}`): HTTP Basic with client "
                "id and secret each form-encoded first, as `client_secret_basic` (RFC 6749 §2.3.1)."
            ),
        },
        WALLET_SESSION: {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": "The citizen's SSO session, as the wallet's pages have it (HttpOnly).",
        },
        BROWSER_BINDING: {
            "type": "apiKey",
            "in": "cookie",
            "name": BROWSER_COOKIE,
            "description": "This browser's id (HttpOnly, set by OneCard): login transactions and CSRF tokens "
            "are bound to it.",
        },
        CSRF_TOKEN: {
            "type": "apiKey",
            "in": "header",
            "name": CSRF_HEADER,
            "description": "The CSRF token of the page that makes the call (bound to this browser and to the "
            "page's purpose: the wallet, a login transaction, a QR channel).",
        },
    }


def error_responses() -> JsonObject:
    """``components/responses``: one response per error status, each the ``Error`` schema."""
    responses: JsonObject = {}
    for status, (name, description) in _ERROR_RESPONSES.items():
        response: JsonObject = {"description": description, "content": json_content(ref("Error"))}
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        responses[name] = response
    return responses


# Builders ------------------------------------------------------------------------------------------------


def ref(schema_name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{schema_name}"}


def json_content(schema: JsonObject) -> JsonObject:
    return {"application/json": {"schema": schema}}


def json_response(description: str, schema: JsonObject, *, headers: JsonObject | None = None) -> JsonObject:
    response: JsonObject = {"description": description, "content": json_content(schema)}
    if headers:
        response["headers"] = headers
    return response


def json_request(schema: JsonObject, *, required: bool = True, description: str = "") -> JsonObject:
    body: JsonObject = {"required": required, "content": json_content(schema)}
    if description:
        body["description"] = description
    return body


def refusals(*statuses: int) -> JsonObject:
    """The operation's error responses, each a reference to the shared one of its status."""
    return {
        str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[status][0]}"} for status in statuses
    }


def query_parameter(name: str, schema: JsonObject, description: str, *, required: bool = False) -> JsonObject:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def path_parameter(name: str, description: str, schema: JsonObject | None = None) -> JsonObject:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1},
    }


NO_CONTENT: Final[JsonObject] = {"description": "Done; no body."}
NOT_MODIFIED: Final[JsonObject] = {
    "description": "The copy named by `If-None-Match` is still current; no body."
}
IF_NONE_MATCH: Final[JsonObject] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the copy held; answered 304 while it is current.",
    "schema": {"type": "string"},
}
CACHE_HEADERS: Final[JsonObject] = {
    "ETag": {"description": "The document's version, for If-None-Match.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "How long the document may be cached.", "schema": {"type": "string"}},
}
TIMESTAMP: Final[JsonObject] = {"type": "string", "format": "date-time"}
OPTIONAL_TIMESTAMP: Final[JsonObject] = {"type": ["string", "null"], "format": "date-time"}
POSIX_SECONDS: Final[JsonObject] = {"type": "integer", "description": "POSIX time, in seconds."}
FLAG: Final[JsonObject] = {"type": "boolean", "description": "`true` or `1`; `false` or `0`."}
# What a login step's JSON call answers once the citizen is logged in (idp.login.service ``json()``).
LOGIN_CONTINUES: Final[JsonObject] = {
    "description": "Logged in: the page goes on to `redirect_to` (the session cookie is set).",
    "type": "object",
    "required": ["redirect_to"],
    "additionalProperties": False,
    "properties": {"redirect_to": {"type": "string", "format": "uri-reference"}},
}


def clamped_integer(low: int, high: int, default: int) -> JsonObject:
    """An integer query parameter read by ``idp.web.int_arg``: any value of up to 18 digits, clamped."""
    return {
        "type": "integer",
        "minimum": -LARGEST_INTEGER_ARG,
        "maximum": LARGEST_INTEGER_ARG,
        "default": default,
        "description": f"Clamped to {low}…{high}.",
    }
