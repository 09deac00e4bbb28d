"""The contract's parts and the document built from them (OpenAPI 3.1.0, https://spec.openapis.org/oas/v3.1.0;
schemas in JSON Schema 2020-12).

Each domain contributes a ``ContractFragment`` from a ``contract.py`` beside its views: its operations (path,
method, the Operation Object) and the component schemas they reference. ``create_app`` registers idp's
fragments on ``Services.api_contract``; the wallet plug-in registers its own there (idp never imports the
wallet). ``ApiContract.seal`` then builds the document once, and refuses to if an operation names a route or
a method the application does not serve — the document cannot describe an endpoint that is not there.
``tests/test_openapi.py`` checks the other direction: every JSON route the application serves is described.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from werkzeug.routing import Map

from idp.openapi.components import ERROR_SCHEMA, JsonObject, error_responses, refusals, security_schemes
from sdk.errors import InvalidRequestError

OPENAPI_VERSION: Final = "3.1.0"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
HTTP_METHODS: Final = ("get", "put", "post", "delete", "patch")
_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")

INFO_DESCRIPTION: Final = """\
OneCard's own JSON APIs: the admin APIs (clients, citizens, cards, keys, venues, scan statistics), the gate
API, real-name verification, and the JSON calls the login and wallet pages make. The OAuth 2.0 / OpenID
Connect endpoints (`/authorize`, `/token`, `/userinfo`, `/introspect`, `/revoke`, `/logout`, `/jwks.json`)
are described by their RFCs and by the discovery document at `/.well-known/openid-configuration`, not here.

**Errors.** Every error of every API here has one shape, `components/schemas/Error`:
`{"error": "<code>", "error_description": "<text>"}` — the OAuth error response of RFC 6749 §5.2. `error`
is a machine code (`invalid_request`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`, or a domain's
own such as `invalid_venue` or `card_status_conflict`); `error_description` is safe to show anyone and never
repeats a submitted value. Server errors (5xx) have the same shape.

**Validation.** Requests are checked against this document: a parameter or JSON body outside it is refused
with 400 and the operation's code (`invalid_request` unless the operation names its own), the description
naming the field and the rule. Authentication comes first: a request without valid credentials for its
operation is answered 401 or 403 (a page's call: its own refusal) and not checked, and a rate-limited
operation counts the attempt before checking it.
"""


@dataclass(frozen=True)
class Operation:
    """One documented operation: ``definition`` is its OpenAPI Operation Object.

    ``refusal`` is the error a request outside the contract is refused with (``invalid_request`` unless the
    domain has its own code for a malformed request, such as ``invalid_venue``); ``field_refusals`` names
    another for one top-level field or parameter (real-name's ``invalid_purpose``).
    """

    method: str
    path: str
    definition: Mapping[str, Any]
    refusal: type[InvalidRequestError] = InvalidRequestError
    field_refusals: Mapping[str, type[InvalidRequestError]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in HTTP_METHODS:
            raise ContractError(f"{self.method!r} is not a lower-case HTTP method")

    @property
    def key(self) -> tuple[str, str]:
        return self.path, self.method

    def refusal_for(self, name: str | None) -> type[InvalidRequestError]:
        return self.field_refusals.get(name, self.refusal) if name is not None else self.refusal


@dataclass(frozen=True)
class ContractFragment:
    """What one domain's views contribute: a tag, its operations, the component schemas they reference."""

    tag: str
    description: str
    operations: tuple[Operation, ...]
    schemas: Mapping[str, JsonObject] = field(default_factory=dict)


class ContractError(Exception):
    """The contract does not fit together: a name given twice, or an operation the app does not serve."""


def path_template(rule: str) -> str:
    """A Werkzeug rule as an OpenAPI path template: ``/cards/<reference>`` → ``/cards/{reference}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


@dataclass(frozen=True)
class SealedContract:
    document: JsonObject
    body: str  # the document serialised once, as /api/openapi.json serves it
    operations: Mapping[tuple[str, str], Operation]  # by (path template, method)


class ApiContract:
    """The registry fragments are added to while the app is built; sealed once when every plug-in is in."""

    def __init__(self) -> None:
        self._fragments: list[ContractFragment] = []
        self._sealed: SealedContract | None = None

    def register(self, *fragments: ContractFragment) -> None:
        if self._sealed is not None:
            raise ContractError("the contract is sealed: register fragments while the app is built")
        self._fragments.extend(fragments)

    @property
    def sealed(self) -> SealedContract:
        if self._sealed is None:
            raise ContractError("the contract is not sealed yet")
        return self._sealed

    def seal(self, url_map: Map, *, server_url: str, version: str) -> SealedContract:
        """Build the document from every registered fragment, checked against the app's routes."""
        if self._sealed is None:
            operations = _operations_by_key(self._fragments)
            _check_served(operations.values(), url_map)
            document = _document(self._fragments, server_url=server_url, version=version)
            body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            self._sealed = SealedContract(document, body, operations)
        return self._sealed


def _operations_by_key(fragments: Iterable[ContractFragment]) -> dict[tuple[str, str], Operation]:
    operations: dict[tuple[str, str], Operation] = {}
    for fragment in fragments:
        for operation in fragment.operations:
            if operation.key in operations:
                raise ContractError(f"{operation.method.upper()} {operation.path} is described twice")
            operations[operation.key] = operation
    return operations


def _check_served(operations: Iterable[Operation], url_map: Map) -> None:
    served: dict[str, set[str]] = {}
    for rule in url_map.iter_rules():
        served.setdefault(path_template(rule.rule), set()).update(m.lower() for m in rule.methods or ())
    for operation in operations:
        if operation.method not in served.get(operation.path, set()):
            raise ContractError(f"{operation.method.upper()} {operation.path} is described but not served")


def _document(fragments: list[ContractFragment], *, server_url: str, version: str) -> JsonObject:
    schemas: JsonObject = {"Error": ERROR_SCHEMA}
    paths: JsonObject = {}
    for fragment in fragments:
        for name, schema in fragment.schemas.items():
            if name in schemas:
                raise ContractError(f"the component schema {name!r} is defined twice")
            schemas[name] = schema
        for operation in fragment.operations:
            definition = {"tags": [fragment.tag], **operation.definition}
            # Every operation may answer 400: the request boundary refuses text no field can hold (NUL,
            # control characters, lone surrogates) anywhere in a request, before any view (idp.web).
            definition["responses"] = {**refusals(400), **definition["responses"]}
            paths.setdefault(operation.path, {})[operation.method] = definition
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {
            "title": "OneCard JSON APIs",
            "version": version,
            "description": INFO_DESCRIPTION,
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": fragment.tag, "description": fragment.description} for fragment in fragments],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "securitySchemes": security_schemes(server_url.rstrip("/") + "/token"),
        },
    }
