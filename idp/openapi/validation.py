"""Requests checked against the contract: the path and query parameters and the JSON body of every operation
``/api/openapi.json`` describes, with JSON Schema 2020-12 (``Draft202012Validator``), compiled once per
application when ``install_contract_validation`` seals the contract.

Order, as OpenAPI request validators have it (openapi-core checks security before parameters and body):

1. **Authentication.** The request hook only finds the operation (``flask.g``). An operation secured by a
   bearer token or HTTP Basic credentials is checked by ``validate_current_request``, called where its view
   has authenticated the caller (``require_scope``; real-name after its rate limit counts the attempt; the
   gate after its venue authentication and rate limit): a wrong or missing credential gets the view's 401
   or 403, never a description of the contract. A public operation is checked by the hook. A page's call
   (cookies, the CSRF header), whose view checks its binding against its own transaction, is checked by the
   hook once what it names is present; without it the view answers its own refusal.
2. **Parameters**, then **the body**: the first violation is refused with the operation's refusal
   (``invalid_request`` unless the domain names its own code) in the one error shape. The description names
   the field and the rule broken, never the value: a value may be a secret, a name or an ID number. A field
   with its own refusal (``field_refusals``) is checked alone first, so that its code is not outranked by a
   rule over the whole body.

What a schema cannot say (check digits, a redirect URI's scheme, whether a key may be retired) stays with
the views, which still validate everything themselves: the contract only refuses earlier, never admits more.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flask import Flask, g, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from werkzeug.wrappers import Response

from idp.openapi.components import JsonObject
from idp.openapi.contract import Operation, SealedContract, path_template
from idp.services import Services
from idp.web import INTEGER_ARG, json_body

log = logging.getLogger(__name__)

_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}
_TYPE_WORDS: Final = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
MAX_NAME_SHOWN: Final = 40  # an unknown field's name is the caller's text: shown, but cut short


@dataclass(frozen=True)
class ParameterCheck:
    name: str
    location: str  # "path" or "query"
    required: bool
    declared_type: str | None  # how the parameter's text is read before validation
    validator: Draft202012Validator

    def value_of(self, text: str) -> Any:
        """The parameter's text as the JSON value its schema describes; left as text if it is not one, so
        that validation refuses it."""
        if self.declared_type == "integer" and INTEGER_ARG.fullmatch(text):
            return int(text)
        if self.declared_type == "boolean" and text in _BOOLEANS:
            return _BOOLEANS[text]
        return text


@dataclass(frozen=True)
class CompiledOperation:
    operation: Operation
    security: list[dict[str, list[str]]]
    parameters: tuple[ParameterCheck, ...]
    body: Draft202012Validator | None  # the JSON body's schema; None when the operation reads no JSON
    body_required: bool
    # The body fields with their own refusal, each with its schema alone and whether the body requires it.
    fields: tuple[tuple[str, Draft202012Validator, bool], ...] = ()
    deferred: bool = False  # checked by validate_current_request where the view has authenticated the caller

    def validate_parameters(self, *, path: Mapping[str, Any], query: Mapping[str, str]) -> None:
        for check in self.parameters:
            given = path if check.location == "path" else query
            # An empty query value counts as absent: every view reads ``?limit=`` as "no limit given".
            text = given.get(check.name)
            if text is None or text == "":
                if check.required:
                    raise self.operation.refusal_for(check.name)(
                        check.name, description=f"{check.name} is required."
                    )
                continue
            value = check.value_of(text) if isinstance(text, str) else text
            error = _first_violation(check.validator.iter_errors(value))
            if error is not None:
                raise self.operation.refusal_for(check.name)(
                    check.name, description=describe_violation(error, check.name)
                )

    def validate_body(self, document: Any) -> None:
        assert self.body is not None
        for field_name, field_validator, required in self.fields:
            if not isinstance(document, dict):
                break
            refusal = self.operation.refusal_for(field_name)
            if field_name not in document:
                if required:
                    raise refusal(field_name, description=f"{field_name} is required.")
                continue
            field_error = _first_violation(field_validator.iter_errors(document[field_name]))
            if field_error is not None:
                raise refusal(field_name, description=describe_violation(field_error, field_name))
        error = _first_violation(self.body.iter_errors(document))
        if error is not None:
            name = _field_of(error)
            raise self.operation.refusal_for(name)(
                name or "body", description=describe_violation(error, "The body")
            )


class RequestValidator:
    """Every operation's checks, compiled once from the sealed contract."""

    def __init__(self, contract: SealedContract) -> None:
        components = contract.document["components"]
        self.schemes: Mapping[str, JsonObject] = components["securitySchemes"]
        # References (#/components/schemas/…) resolve against the validated schema's root: give it them.
        root = {"components": {"schemas": components["schemas"]}}
        self._operations = {
            key: _compile(operation, root, self.schemes) for key, operation in contract.operations.items()
        }

    def find(self, path: str, method: str) -> CompiledOperation | None:
        return self._operations.get((path, method))


def _compile(operation: Operation, root: JsonObject, schemes: Mapping[str, JsonObject]) -> CompiledOperation:
    definition = operation.definition

    def validator(schema: JsonObject) -> Draft202012Validator:
        return Draft202012Validator({**schema, **root})

    parameters = tuple(
        ParameterCheck(
            name=parameter["name"],
            location=parameter["in"],
            required=bool(parameter.get("required")),
            declared_type=_declared_type(parameter["schema"]),
            validator=validator(parameter["schema"]),
        )
        for parameter in definition.get("parameters", ())
        if parameter["in"] in ("path", "query")
    )
    request_body = definition.get("requestBody", {})
    json_media = request_body.get("content", {}).get("application/json")
    fields: list[tuple[str, Draft202012Validator, bool]] = []
    if json_media is not None:
        body_schema = _resolved(json_media["schema"], root)
        properties = body_schema.get("properties", {})
        required = body_schema.get("required", ())
        fields = [
            (name, validator(properties[name]), name in required)
            for name in operation.field_refusals
            if name in properties
        ]
    security = list(definition.get("security", ()))
    return CompiledOperation(
        operation=operation,
        security=security,
        parameters=parameters,
        body=validator(json_media["schema"]) if json_media is not None else None,
        body_required=bool(request_body.get("required")),
        fields=tuple(fields),
        deferred=any(schemes[name]["type"] in _AUTHENTICATED for each in security for name in each),
    )


# Schemes a view authenticates (require_scope, client authentication) before validate_current_request.
_AUTHENTICATED: Final = ("oauth2", "http")


def _resolved(schema: JsonObject, root: JsonObject) -> JsonObject:
    """``schema`` with its local ``$ref`` (``#/components/schemas/…``) followed."""
    while isinstance(reference := schema.get("$ref"), str) and reference.startswith("#/"):
        target: Any = root
        for part in reference[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _declared_type(schema: JsonObject) -> str | None:
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def credentials_present(
    security: Iterable[Mapping[str, list[str]]],
    schemes: Mapping[str, JsonObject],
    *,
    header: Callable[[str], str | None],
    cookie: Callable[[str], str | None],
) -> bool:
    """Whether the request carries what one of the security requirements names (not whether it is valid:
    that is the view's to decide). An operation without requirements is public."""
    requirements = list(security)
    if not requirements:
        return True
    scheme_word = (header("Authorization") or "").partition(" ")[0].lower()

    def present(scheme: JsonObject) -> bool:
        if scheme["type"] == "oauth2":
            return scheme_word in ("bearer", "dpop")  # a DPoP-bound token: RFC 9449 §7.1
        if scheme["type"] == "http" and scheme["scheme"] == "bearer":
            return scheme_word == "bearer"
        if scheme["type"] == "http":
            return scheme_word == str(scheme["scheme"])
        read = cookie if scheme["in"] == "cookie" else header
        return bool(read(scheme["name"]))

    return any(all(present(schemes[name]) for name in requirement) for requirement in requirements)


# Descriptions: the field and the rule, never the value ------------------------------------------------


def _first_violation(errors: Iterable[ValidationError]) -> ValidationError | None:
    # The most relevant error (jsonschema's ranking: the shallowest, strong keywords first), not descending
    # into anyOf branches: "one of these forms" says more than one branch's complaint.
    return max(errors, key=relevance, default=None)


def _field_of(error: ValidationError) -> str | None:
    """The top-level field the violation is about."""
    if error.absolute_path:
        return str(error.absolute_path[0])
    if error.validator == "required":
        return _missing(error)
    if error.validator == "additionalProperties":
        return _unexpected(error)
    return None


def _missing(error: ValidationError) -> str | None:
    instance = error.instance if isinstance(error.instance, dict) else {}
    return next((name for name in error.validator_value if name not in instance), None)


def _unexpected(error: ValidationError) -> str | None:
    known = error.schema.get("properties", {})
    instance = error.instance if isinstance(error.instance, dict) else {}
    return next((str(name) for name in instance if name not in known), None)


def _label(error: ValidationError, whole: str) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return path.lstrip(".") if path else whole


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _rule(error: ValidationError) -> str:
    """The rule broken, in words, from the schema (never from the instance)."""
    value = error.validator_value
    bound = "least" if str(error.validator).startswith("min") else "most"
    match error.validator:
        case "type":
            kinds = [value] if isinstance(value, str) else value
            return "must be " + " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds)
        case "enum":
            return "must be one of " + ", ".join(map(str, value))
        case "const":
            return f"must be {value}"
        case "minLength" | "maxLength":
            return f"must have at {bound} {_count(value, 'character')}"
        case "minItems" | "maxItems":
            return f"must have at {bound} {_count(value, 'item')}"
        case "minimum" | "maximum":
            return f"must be at {bound} {value}"
        case "pattern":
            return f"must match the pattern {value}"
        case "anyOf" | "oneOf":
            return "must be one of: " + "; ".join(branch.get("title", "another form") for branch in value)
    return f"is not valid ({error.validator})"


def describe_violation(error: ValidationError, whole: str) -> str:
    """A description of what broke the contract, for the caller: the field and the rule."""
    label = _label(error, whole)
    if error.validator == "required":
        missing = _missing(error)
        return f"{missing} is required." if not error.absolute_path else f"{label}.{missing} is required."
    if error.validator == "additionalProperties":
        unexpected = (_unexpected(error) or "")[:MAX_NAME_SHOWN]
        return f"{label} has an unknown field {unexpected!r}."
    return f"{label} {_rule(error)}."


# The request hook ------------------------------------------------------------------------------------------


def contract_version() -> str:
    try:
        return importlib.metadata.version("onecard")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def install_contract_validation(app: Flask) -> None:
    """Seal the contract (every plug-in has registered its fragment by now) and check each request of a
    described operation against it, before the view."""
    svc: Services = app.extensions["onecard"]
    sealed = svc.api_contract.seal(app.url_map, server_url=svc.settings.issuer, version=contract_version())
    validator = RequestValidator(sealed)
    by_rule = {rule.rule: path_template(rule.rule) for rule in app.url_map.iter_rules()}

    @app.before_request
    def _find_contract_operation() -> None:
        rule = request.url_rule
        template = by_rule.get(rule.rule) if rule is not None else None
        if template is None:
            return  # no route, or one added after the contract was sealed: not described
        method = "get" if request.method == "HEAD" else request.method.lower()
        compiled = validator.find(template, method)
        if compiled is None:
            return
        g.contract_operation = compiled
        if compiled.deferred:
            return  # checked by validate_current_request once the view has authenticated the caller
        if not credentials_present(
            compiled.security,
            validator.schemes,
            header=request.headers.get,
            cookie=request.cookies.get,
        ):
            return  # the view reads nothing before its own refusal
        validate_current_request()

    @app.after_request
    def _deferred_check_was_made(response: Response) -> Response:
        # A secured view must call validate_current_request once it has authenticated the caller; one that
        # answers success without it skipped the contract. A test run refuses it loudly, production logs it.
        compiled: CompiledOperation | None = g.get("contract_operation")
        if compiled is not None and compiled.deferred and response.status_code < 400:
            log.error("%s %s skipped its contract check", request.method, request.url_rule)
            if svc.settings.env == "test":
                raise RuntimeError(f"{request.url_rule} answered without validate_current_request()")
        return response


def validate_current_request() -> None:
    """Check this request against its operation's contract, once; a request of no described operation
    passes. Called where the view has authenticated the caller (``idp.openapi.validation``'s order)."""
    compiled: CompiledOperation | None = g.pop("contract_operation", None)
    if compiled is None:
        return
    compiled.validate_parameters(path=request.view_args or {}, query=request.args)
    if compiled.body is not None and (compiled.body_required or request.content_length):
        # Not JSON, not an object, nested too deep: refused by json_body as every view would.
        compiled.validate_body(json_body(check_text=False))
