"""sdk.dpop on its own: RFC 7638's thumbprint vector, the proofs a ``DpopKey`` makes (RFC 9449 §4.2), and
``DpopSigner``'s one retry with the server's nonce (§8, §9), against answers built here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from sdk.clock import FixedClock
from sdk.dpop import DpopKey, DpopSigner, access_token_hash, asks_for_nonce, jwk_thumbprint
from sdk.keys import Key
from sdk.realname import RealnameClient, RealnameServiceError

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
        "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
        "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
        "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
NOW = 1_800_000_000.0


def test_the_rfc7638_thumbprint_vector() -> None:
    assert jwk_thumbprint(Key.from_jwk(RFC7638_JWK).public_key) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256", "RS256"])
def test_a_proof_names_the_request_and_carries_only_the_public_key(alg: Any) -> None:
    key = DpopKey.generate(alg)
    proof = key.create_proof(
        "post", "HTTPS://IdP.example:443/token?x=1#y", now=NOW, nonce="n-1", access_token="at"
    )
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == alg
    assert header["jwk"] == key.public_jwk and not {"d", "p", "q"} & header["jwk"].keys()
    claims = jwt.decode(proof, key.public_key, algorithms=[alg], options={"verify_iat": False})  # type: ignore[arg-type]
    assert claims["htm"] == "POST" and claims["htu"] == "https://idp.example/token"
    assert claims["iat"] == int(NOW) and claims["nonce"] == "n-1" and claims["ath"] == access_token_hash("at")
    again = jwt.decode(
        key.create_proof("POST", "https://idp.example/token", now=NOW), options={"verify_signature": False}
    )
    assert again["jti"] != claims["jti"] and "ath" not in again and "nonce" not in again


def test_a_key_refuses_an_algorithm_it_cannot_sign_with() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point of the test
    with pytest.raises(ValueError):
        DpopKey(weak, "RS256")
    with pytest.raises(ValueError):
        DpopKey(DpopKey.generate("ES256").private_key, "RS256")
    assert "PRIVATE" not in repr(DpopKey.generate())


def answer(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def test_the_signer_retries_once_with_the_nonce_and_keeps_it_per_server() -> None:
    signer = DpopSigner(DpopKey.generate(), clock=FixedClock(NOW))
    asked = answer(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "n-1"})
    sent: list[str] = []
    answers = [asked, answer(200, {"ok": True}, {"DPoP-Nonce": "n-2"}), asked, asked]

    def send(headers: dict[str, str]) -> requests.Response:
        sent.append(headers["DPoP"])
        return answers.pop(0)

    assert signer.send("POST", "https://idp.example/token", send).status_code == 200
    nonces = [jwt.decode(p, options={"verify_signature": False}).get("nonce") for p in sent]
    assert nonces == [None, "n-1"]
    # The next request carries the nonce the last answer named; a second refusal is not retried again.
    assert signer.send("POST", "https://idp.example/token", send).status_code == 400
    assert jwt.decode(sent[2], options={"verify_signature": False})["nonce"] == "n-2"
    assert len(sent) == 4 and not answers
    # Another server never sees this one's nonce.
    other = signer.proof_header("GET", "https://rs.example/api")["DPoP"]
    assert "nonce" not in jwt.decode(other, options={"verify_signature": False})


def test_what_counts_as_asking_for_the_nonce() -> None:
    challenge = (
        'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"'
    )
    assert asks_for_nonce(answer(401, {}, {"WWW-Authenticate": challenge, "DPoP-Nonce": "n"}))
    assert asks_for_nonce(answer(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "n"}))
    assert not asks_for_nonce(answer(400, {"error": "use_dpop_nonce"}))  # no nonce to retry with
    assert not asks_for_nonce(answer(400, {"error": "invalid_dpop_proof"}, {"DPoP-Nonce": "n"}))
    assert not asks_for_nonce(answer(200, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "n"}))


class _OneAnswer(requests.Session):
    """The token endpoint's answer, as a provider that dropped the binding would give it."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__()
        self.response = response

    def post(self, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        return self.response


def test_a_realname_client_that_requires_dpop_refuses_a_bearer_token() -> None:
    with pytest.raises(ValueError):
        RealnameClient("https://idp.example", "oc_x", "occs_x", require_dpop=True)
    bearer = answer(200, {"access_token": "t", "token_type": "Bearer", "expires_in": 300})
    client = RealnameClient(
        "https://idp.example",
        "oc_x",
        "occs_x",
        session=_OneAnswer(bearer),
        clock=FixedClock(NOW),
        dpop_key=DpopKey.generate(),
        require_dpop=True,
    )
    with pytest.raises(RealnameServiceError):
        client.access_token()
    lenient = RealnameClient(
        "https://idp.example",
        "oc_x",
        "occs_x",
        session=_OneAnswer(bearer),
        clock=FixedClock(NOW),
        dpop_key=DpopKey.generate(),
    )
    assert lenient.access_token() == "t"
