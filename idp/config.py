"""Configuration: ``ONECARD_*`` environment variables over an optional TOML file, validated at start-up.

Every setting is a field of ``Settings``; the environment name is ``ONECARD_`` + the field name in upper case
and the file key is the field name. An unknown key is an error (a typo must not silently fall back to a
default), and so is an unsafe production setting: debug on, a development secret, or a plain-HTTP issuer.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from idp.stores.redis_url import RedisUrlError, is_sentinel_url, parse_sentinel_url

# A key-encryption key anyone can read in this file: fine for a laptop, refused in production.
DEVELOPMENT_KEK = "ZGV2ZWxvcG1lbnQtb25seS1rZWstZG8tbm90LXVzZS0"
# `openssl rand -hex 16` makes 32 characters: a token an attacker on the network cannot guess.
MIN_PRODUCTION_METRICS_TOKEN = 32


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


def is_local_bridge_url(url: str) -> bool:
    """A reader bridge's URL as the card pages may call it: ``http://127.0.0.1:PORT``, no path. 127.0.0.1
    only: the pages' Content-Security-Policy lets them reach http://127.0.0.1:* and nothing else."""
    try:
        bridge = urlsplit(url)
        bridge.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return False
    plain = not (bridge.path or bridge.query or bridge.fragment or "@" in bridge.netloc)
    return bridge.scheme == "http" and bridge.hostname == "127.0.0.1" and plain


@dataclass(frozen=True)
class Settings:
    env: str = "development"  # development | production | test
    debug: bool = False
    issuer: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///var/onecard.sqlite3"
    redis_url: str = ""
    redis_prefix: str = "onecard"  # several deployments (or test runs) may share one Redis
    # Key-encryption keys, comma-separated base64url, 32 bytes each; the first encrypts, all decrypt.
    kek: str = DEVELOPMENT_KEK
    kek_file: str = ""
    # Lifetimes, seconds.
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 86400
    authorization_code_ttl: int = 60
    # Pushed authorization requests (RFC 9126): the request_uri's lifetime, and whether every client must
    # push its requests (advertised as require_pushed_authorization_requests) or only those registered so.
    par_request_ttl: int = 60
    require_par: bool = False
    # DPoP (RFC 9449): proofs must carry the server's nonce (§8, §9), at the token endpoint and at every
    # resource, so a proof made in advance (by a script that got into the portal) is dead within two nonce
    # lifetimes whatever its iat says. Costs one extra round trip per nonce lifetime; off only for clients
    # that cannot retry with a nonce.
    dpop_require_nonce: bool = True
    dpop_nonce_lifetime: int = 300
    login_transaction_ttl: int = 600
    sso_session_ttl: int = 8 * 3600
    jwks_max_age: int = 3600
    pairwise_salt: str = ""
    back_channel_logout_timeout: float = 3.0
    rate_limit_per_minute: int = 10
    demo_data: bool = False
    trusted_proxy_count: int = 0
    # Key rotation (idp.keys.lifecycle): automatic rotation interval per key set in days, 0 = manual only.
    # Pre-publication and retirement periods are not settings: they derive from the lifetimes above.
    key_rotation_oidc_days: int = 90  # oidc-rs256 and oidc-es256
    key_rotation_qr_days: int = 30
    key_rotation_data_days: int = 365
    key_rotation_cookie_days: int = 30
    key_rotation_card_ca_days: int = 0  # card-issuer CAs rotate by decision, not by the calendar
    # How long certificates a card-issuer CA signed stay valid: a retired CA stays trusted that long.
    card_certificate_days: int = 3650
    # Seconds between built-in scheduler ticks (one node at a time); 0: none, `onecard keys tick` by cron.
    key_tick_interval: int = 0
    # PKCS#11 HSM for signing keys: module path, token label, PIN (or a file holding it), and the key sets
    # (comma-separated, e.g. "oidc-rs256,oidc-es256") whose new keys are generated in the HSM.
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""
    pkcs11_pin: str = ""
    pkcs11_pin_file: str = ""
    pkcs11_key_sets: str = ""
    # Where the login page looks for the citizen's reader bridge (reader_bridge.server.DEFAULT_PORT); a
    # developer's bridge may listen on another loopback port.
    card_bridge_url: str = "http://127.0.0.1:47400"
    # Kiosk pages (halls/kiosk): seconds without input before the page ends the citizen's visit and returns to
    # its start (the "More time" button extends it), and how long a terminal's kiosk session lasts.
    kiosk_idle_seconds: int = 90
    kiosk_terminal_hours: int = 14
    # How long one QR-login status long-poll may wait for a change, seconds.
    qr_login_poll_seconds: float = 20.0
    # Prometheus metrics (idp.observability): a bearer token (or a file holding it) that opens /metrics on
    # the application (without one, /metrics is 404), and/or host:port of a separate listener `onecard serve`
    # starts for a private interface, with no token (e.g. 127.0.0.1:9464).
    metrics_token: str = ""
    metrics_token_file: str = ""
    metrics_bind: str = ""
    # The lean path (idp.fastpath): plain client_credentials tokens, discovery and the JWKS answered before
    # Flask, with the same answers. Off only to compare it with the full path.
    lean_path: bool = True
    # OpenID Federation 1.0 (idp.federation, docs/federation.md). The entity id is the issuer. Roles,
    # comma-separated: leaf (every deployment), intermediate and/or anchor (issues subordinate statements).
    federation_roles: str = "leaf"
    federation_organization_name: str = "OneCard"
    # Entity ids of this deployment's superiors, comma-separated (empty for a trust anchor).
    federation_authority_hints: str = ""
    # JSON file {"<trust anchor entity id>": <its JWKS>}: the anchors this deployment resolves chains to, with
    # the keys it trusts them by (obtained out of band, never from the anchor's own configuration).
    federation_trust_anchors_file: str = ""
    # JSON file: an array of the trust mark JWTs this deployment holds (issued to it by a trust mark issuer).
    federation_trust_marks_file: str = ""
    # Lifetime of the statements this deployment signs, and how long a resolved chain is cached at most.
    federation_statement_ttl: int = 86400
    federation_chain_cache_seconds: int = 3600
    # Lifetime of the trust marks an anchor issues; the trust mark type meaning "authenticates at loa:high".
    federation_trust_mark_ttl: int = 30 * 86400
    federation_loa_high_trust_mark: str = "https://onecard.example/trust-marks/loa-high"
    # Each rotation must be registered with the superiors first (docs/federation.md): manual by default.
    key_rotation_federation_days: int = 0
    # The card-issuer region codes (GB/T 2260, 6 digits, comma-separated) this deployment is the home of:
    # published in its metadata, so other regions send these cards' holders and codes here. Empty: the
    # regions of this deployment's own card-issuer CAs (``card-ca-<region>`` key sets).
    federation_region_codes: str = ""
    # Other regions' entity ids this deployment deals with, beside the subordinates its trust anchors list
    # (comma-separated; e.g. a neighbouring province under another anchor).
    federation_peers: str = ""
    # How often the region directory (other regions, their metadata, resolved through the federation) is
    # built afresh: a region the anchor removed is no longer trusted after at most this long.
    federation_directory_refresh_seconds: int = 300
    # In production the federation's outgoing calls (statements, token, userinfo, gate sync) go to public
    # addresses only, and to these hosts whatever they resolve to (comma-separated host names: the
    # platforms of a government WAN on private addresses).
    federation_private_hosts: str = ""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_secure_issuer(self) -> bool:
        return urlsplit(self.issuer).scheme == "https"

    def key_encryption_keys(self) -> list[str]:
        if self.kek_file:
            try:
                raw = Path(self.kek_file).read_text().strip()
            except OSError as exc:
                # The file's name and the OS's reason only: never what was read.
                raise ConfigError(f"ONECARD_KEK_FILE {self.kek_file}: {exc.strerror or exc}") from exc
        else:
            raw = self.kek
        return [part.strip() for part in raw.split(",") if part.strip()]

    def metrics_bearer_token(self) -> str:
        """The token /metrics asks for ("" when /metrics is closed); the file, when named, wins."""
        if not self.metrics_token_file:
            return self.metrics_token.strip()
        try:
            return Path(self.metrics_token_file).read_text().strip()
        except OSError as exc:
            # The file's name and the OS's reason only: never what was read.
            raise ConfigError(
                f"ONECARD_METRICS_TOKEN_FILE {self.metrics_token_file}: {exc.strerror or exc}"
            ) from exc

    def metrics_address(self) -> tuple[str, int] | None:
        """``metrics_bind`` as (host, port): ``127.0.0.1:9464``, ``[::1]:9464``; None when unset."""
        if not self.metrics_bind:
            return None
        host, _, port = self.metrics_bind.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not (port.isascii() and port.isdecimal()) or not 0 < int(port) < 65536:
            raise ConfigError(
                f"ONECARD_METRICS_BIND must be host:port, e.g. 127.0.0.1:9464: {self.metrics_bind!r}"
            )
        return host, int(port)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"ONECARD_{name.upper()}: {exc}") from exc


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML file (``ONECARD_CONFIG_FILE``), then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = environ.get("ONECARD_CONFIG_FILE")
    if config_file:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"ONECARD_CONFIG_FILE {config_file}: {exc}") from exc
        for key, raw in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    for env_key, raw in environ.items():
        if not env_key.startswith("ONECARD_") or env_key == "ONECARD_CONFIG_FILE":
            continue
        name = env_key.removeprefix("ONECARD_").lower()
        if name.startswith("test_") or name.startswith("bridge_"):
            continue  # read by the test suite and by the reader bridge, not by the server
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {env_key}")
        values[name] = _coerce(name, raw)
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
    settings = Settings(**values)
    validate_settings(settings)
    return settings


def validate_settings(settings: Settings) -> None:
    if settings.env not in {"development", "production", "test"}:
        raise ConfigError(f"ONECARD_ENV must be development, production or test, not {settings.env!r}")
    parts = urlsplit(settings.issuer)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"ONECARD_ISSUER must be an http(s) URL without query or fragment: {settings.issuer!r}"
        )
    if settings.issuer.endswith("/"):
        raise ConfigError("ONECARD_ISSUER must not end with '/'")
    if not settings.key_encryption_keys():
        raise ConfigError("ONECARD_KEK is empty")
    for name in (
        "access_token_ttl",
        "id_token_ttl",
        "refresh_token_ttl",
        "authorization_code_ttl",
        "par_request_ttl",
        "dpop_nonce_lifetime",
        "login_transaction_ttl",
        "sso_session_ttl",
        "jwks_max_age",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"ONECARD_{name.upper()} must be positive")
    for name in (
        "key_rotation_oidc_days",
        "key_rotation_qr_days",
        "key_rotation_data_days",
        "key_rotation_cookie_days",
        "key_rotation_card_ca_days",
        "key_tick_interval",
    ):
        if getattr(settings, name) < 0:
            raise ConfigError(f"ONECARD_{name.upper()} must not be negative")
    if settings.par_request_ttl > 600:
        # A pushed request is for the browser to carry at once (FAPI 2.0 §5.3.2.2: under 600 seconds).
        raise ConfigError("ONECARD_PAR_REQUEST_TTL must be at most 600 seconds")
    if settings.card_certificate_days <= 0:
        raise ConfigError("ONECARD_CARD_CERTIFICATE_DAYS must be positive")
    if not is_local_bridge_url(settings.card_bridge_url):
        raise ConfigError(
            "ONECARD_CARD_BRIDGE_URL must be http://127.0.0.1:PORT (the bridge is local): "
            f"{settings.card_bridge_url!r}"
        )
    if not 0 < settings.qr_login_poll_seconds <= 60:
        raise ConfigError("ONECARD_QR_LOGIN_POLL_SECONDS must be between 0 and 60")
    if settings.pkcs11_key_sets.strip(" ,") and not (settings.pkcs11_module and settings.pkcs11_token_label):
        raise ConfigError("ONECARD_PKCS11_KEY_SETS needs ONECARD_PKCS11_MODULE and _TOKEN_LABEL")
    if settings.trusted_proxy_count < 0:
        raise ConfigError("ONECARD_TRUSTED_PROXY_COUNT must not be negative")
    if is_sentinel_url(settings.redis_url):
        try:
            parse_sentinel_url(settings.redis_url)
        except RedisUrlError as exc:  # the message names the wrong part, never the password
            raise ConfigError(f"ONECARD_REDIS_URL: {exc}") from None
    elif settings.redis_url and urlsplit(settings.redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError("ONECARD_REDIS_URL must be redis://, rediss://, unix:// or redis+sentinel://")
    metrics_token = settings.metrics_bearer_token()
    # A header value: printable ASCII without spaces (RFC 6750 b64token and more), so a scraper can send it.
    if metrics_token and not all("!" <= char <= "~" for char in metrics_token):
        raise ConfigError("ONECARD_METRICS_TOKEN must be printable ASCII without spaces")
    settings.metrics_address()  # raises ConfigError for a bind that is not host:port
    if settings.is_production:
        problems = []
        if metrics_token and len(metrics_token) < MIN_PRODUCTION_METRICS_TOKEN:
            problems.append(
                f"ONECARD_METRICS_TOKEN must be at least {MIN_PRODUCTION_METRICS_TOKEN} characters "
                "(it opens /metrics to anyone who can reach the server)"
            )
        if settings.debug:
            problems.append("ONECARD_DEBUG must be off")
        if DEVELOPMENT_KEK in settings.key_encryption_keys():
            problems.append("ONECARD_KEK is the development default; set your own key-encryption key")
        if not settings.is_secure_issuer:
            problems.append("ONECARD_ISSUER must use https")
        if not settings.pairwise_salt:
            problems.append("ONECARD_PAIRWISE_SALT must be set")
        if settings.database_url.startswith("sqlite"):
            problems.append("ONECARD_DATABASE_URL must name a server database (PostgreSQL), not SQLite")
        if problems:
            raise ConfigError("unsafe production settings: " + "; ".join(problems))
