"""Entity statements (OpenID Federation 1.0 §3): signed JWTs of ``typ`` ``entity-statement+jwt`` an entity
makes about itself (its entity configuration, ``iss`` = ``sub``, §3.1 and §9) or a superior makes about a
subordinate (a subordinate statement, §3.1, served by ``fetch``, §8.1).

Pure functions: keys and ``now`` come in. PyJWT checks signatures; lifetimes, ``typ``, claim shapes and
``crit`` (§3.1.1) are checked here, so tests control time and never sleep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from idp.federation.errors import (
    MalformedStatementError,
    StatementExpiredError,
    StatementSignatureError,
    UnexpectedStatementError,
)
from sdk.keys import ALGORITHMS, InvalidKeyError, Key, KeySet

ENTITY_STATEMENT_TYPE: Final = "entity-statement+jwt"
ENTITY_STATEMENT_CONTENT_TYPE: Final = "application/entity-statement+jwt"
RESOLVE_RESPONSE_TYPE: Final = "resolve-response+jwt"
RESOLVE_RESPONSE_CONTENT_TYPE: Final = "application/resolve-response+jwt"
FEDERATION_ENTITY: Final = "federation_entity"
OPENID_PROVIDER: Final = "openid_provider"
OPENID_RELYING_PARTY: Final = "openid_relying_party"
# A statement larger than this is refused before it is parsed: a superior's statement is a few KiB.
MAX_STATEMENT_BYTES: Final = 64 * 1024
# How far an ``iat`` may lie in the future: the clocks of two deployments differ a little.
CLOCK_SKEW: Final = 60
# Claims §3.1 defines and this implementation understands; a ``crit`` naming another is refused (§3.1.1).
UNDERSTOOD_CLAIMS: Final = frozenset(
    {
        "iss",
        "sub",
        "iat",
        "exp",
        "jwks",
        "authority_hints",
        "metadata",
        "metadata_policy",
        "metadata_policy_crit",
        "constraints",
        "trust_marks",
        "trust_mark_issuers",
        "trust_mark_owners",
        "crit",
        "source_endpoint",
    }
)


@dataclass(frozen=True)
class EntityStatement:
    """One parsed entity statement. ``token`` is the JWT as received (a resolve response repeats it)."""

    token: str
    issuer: str
    subject: str
    issued_at: int
    expires_at: int
    jwks: KeySet
    kid: str
    authority_hints: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    metadata_policy: Mapping[str, Any] = field(default_factory=dict)
    metadata_policy_crit: tuple[str, ...] = ()
    constraints: Mapping[str, Any] = field(default_factory=dict)
    trust_marks: tuple[Mapping[str, Any], ...] = ()
    trust_mark_issuers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_configuration(self) -> bool:
        """An entity configuration: a statement an entity makes about itself (§3)."""
        return self.issuer == self.subject

    def federation_endpoint(self, name: str) -> str | None:
        """``federation_fetch_endpoint`` etc. from the ``federation_entity`` metadata (§5.1.1)."""
        entity = self.metadata.get(FEDERATION_ENTITY)
        value = entity.get(name) if isinstance(entity, Mapping) else None
        return value if isinstance(value, str) else None


def create_entity_statement(
    *,
    key: Key,
    issuer: str,
    subject: str,
    jwks: KeySet,
    now: float,
    lifetime: int,
    authority_hints: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    metadata_policy: Mapping[str, Any] | None = None,
    constraints: Mapping[str, Any] | None = None,
    trust_marks: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Sign an entity statement with ``key``. ``jwks`` are the subject's federation keys, public parts only
    (for an entity configuration: the issuer's own published set, pending and retired keys included)."""
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "iat": iat,
        "exp": iat + lifetime,
        "jwks": {"keys": [k.public_jwk() for k in jwks]},
    }
    if authority_hints:
        claims["authority_hints"] = list(authority_hints)
    if metadata:
        claims["metadata"] = dict(metadata)
    if metadata_policy:
        claims["metadata_policy"] = dict(metadata_policy)
    if constraints:
        claims["constraints"] = dict(constraints)
    if trust_marks:
        claims["trust_marks"] = [dict(mark) for mark in trust_marks]
    claims.update(extra or {})
    return sign_typed_jwt(claims, key, typ=ENTITY_STATEMENT_TYPE)


def sign_typed_jwt(claims: Mapping[str, Any], key: Key, *, typ: str) -> str:
    if key.private_key is None:
        raise InvalidKeyError(f"key {key.kid} cannot sign")
    headers = {"kid": key.kid, "typ": typ}
    return jwt.encode(dict(claims), key.private_key, algorithm=key.alg, headers=headers)  # type: ignore[arg-type]


def read_typed_jwt(token: str | bytes, *, expected_typ: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a JWT, signature not yet checked; ``MalformedStatementError`` unless it is
    a compact JWS of ``expected_typ`` with an asymmetric algorithm and a ``kid``."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise MalformedStatementError("not ASCII") from exc
    if not isinstance(token, str) or not token or len(token) > MAX_STATEMENT_BYTES:
        raise MalformedStatementError("empty or too large")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError) as exc:
        raise MalformedStatementError(f"not a JWT: {type(exc).__name__}") from exc
    if str(header.get("typ", "")).lower() != expected_typ:
        raise MalformedStatementError(f"typ {header.get('typ')!r}, expected {expected_typ}")
    if header.get("alg") not in ALGORITHMS or not isinstance(header.get("kid"), str):
        raise MalformedStatementError("alg must be asymmetric and kid present")
    if not isinstance(claims, dict):
        raise MalformedStatementError("claims are not an object")
    return header, claims


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise MalformedStatementError(f"{name} must be an array of strings")
    return tuple(value)


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedStatementError(f"{name} must be an object")
    return value


def parse_entity_statement(token: str | bytes) -> EntityStatement:
    """Parse an entity statement without checking its signature or lifetime (``verify_entity_statement``
    does); raises ``MalformedStatementError`` for anything §3.1 does not allow."""
    header, claims = read_typed_jwt(token, expected_typ=ENTITY_STATEMENT_TYPE)
    for name in ("iss", "sub"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise MalformedStatementError(f"{name} must be a non-empty string")
    for name in ("iat", "exp"):
        if not isinstance(claims.get(name), int) or isinstance(claims[name], bool):
            raise MalformedStatementError(f"{name} must be an integer")
    try:
        jwks = KeySet.from_jwks(claims.get("jwks"))  # type: ignore[arg-type]
    except InvalidKeyError as exc:
        raise MalformedStatementError(f"jwks: {exc}") from exc
    if not len(jwks):
        raise MalformedStatementError("jwks holds no usable key")
    crit = _strings(claims.get("crit"), "crit")
    not_understood = [name for name in crit if name not in UNDERSTOOD_CLAIMS or name not in claims]
    if not_understood:
        raise MalformedStatementError(f"crit names claims not understood: {not_understood}")
    issuers = _object(claims.get("trust_mark_issuers"), "trust_mark_issuers")
    marks = claims.get("trust_marks")
    if marks is not None and (
        not isinstance(marks, list) or not all(isinstance(mark, dict) for mark in marks)
    ):
        raise MalformedStatementError("trust_marks must be an array of objects")
    return EntityStatement(
        token=token.decode("ascii").strip() if isinstance(token, bytes) else token,
        issuer=claims["iss"],
        subject=claims["sub"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        jwks=jwks,
        kid=header["kid"],
        authority_hints=_strings(claims.get("authority_hints"), "authority_hints"),
        metadata=_object(claims.get("metadata"), "metadata"),
        metadata_policy=_object(claims.get("metadata_policy"), "metadata_policy"),
        metadata_policy_crit=_strings(claims.get("metadata_policy_crit"), "metadata_policy_crit"),
        constraints=_object(claims.get("constraints"), "constraints"),
        trust_marks=tuple(marks or ()),
        trust_mark_issuers={k: _strings(v, "trust_mark_issuers") for k, v in issuers.items()},
        claims=claims,
    )


def verify_signature(token: str, *, kid: str, keys: KeySet) -> None:
    """The JWS signature by the key ``kid`` of ``keys``; ``StatementSignatureError`` otherwise."""
    key = keys.find(kid)
    if key is None:
        raise StatementSignatureError(f"kid {kid!r} is not among the verifier's keys")
    try:
        jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidAlgorithmError as exc:
        raise StatementSignatureError("the header's alg is not the key's") from exc
    except jwt.PyJWTError as exc:
        raise StatementSignatureError(f"bad signature: {type(exc).__name__}") from exc


def check_lifetime(issued_at: int, expires_at: int, *, now: float, what: str) -> None:
    if now >= expires_at:
        raise StatementExpiredError(f"{what} expired at {expires_at}")
    if issued_at > now + CLOCK_SKEW:
        raise StatementExpiredError(f"{what} issued in the future ({issued_at})")


def verify_entity_statement(
    statement: EntityStatement,
    *,
    keys: KeySet,
    now: float,
    expected_issuer: str,
    expected_subject: str,
) -> EntityStatement:
    """Check who the statement is from and about, its signature by one of ``keys`` and its lifetime."""
    if statement.issuer != expected_issuer or statement.subject != expected_subject:
        raise UnexpectedStatementError(
            f"statement iss={statement.issuer} sub={statement.subject}, expected "
            f"iss={expected_issuer} sub={expected_subject}"
        )
    verify_signature(statement.token, kid=statement.kid, keys=keys)
    check_lifetime(
        statement.issued_at, statement.expires_at, now=now, what=f"statement by {statement.issuer}"
    )
    return statement
