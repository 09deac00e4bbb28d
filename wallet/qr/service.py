"""Issuing an e-card's dynamic ESSC1 code and drawing it (DESIGN.md §5 "Dynamic QR", docs/formats/essc1.md).

The code is made by ``sdk.qr_token.issue_qr_token`` — the codec the gates share — with the QR key set's
active key, the card's issuing region as ``iss``, the e-card's opaque handle, a 60 s lifetime and a fresh
random ``cti``; the only other content is the facts the citizen chose to show. The wallet shows a new code
every 30 s, so a code on screen always has at least 30 s left.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

import qrcode
import qrcode.constants
from sqlalchemy.orm import Session

from idp.citizens.service import decrypt_profile
from idp.crypto.pii import PiiCipher
from idp.keys.service import QR_SIGNING, KeyRing
from sdk.qr_token import DEFAULT_LIFETIME, issue_qr_token
from wallet.ecards.errors import EcardNotUsableError
from wallet.ecards.service import EcardView, disclosure_values, usable_citizen
from wallet.qr.errors import QrKeyUnavailableError

CODE_LIFETIME: Final = DEFAULT_LIFETIME  # 60 s
REFRESH_INTERVAL: Final = 30  # the wallet shows a new code this often


@dataclass(frozen=True)
class IssuedCode:
    text: str
    issued_at: int
    expires_at: int
    refresh_at: int

    def to_json(self) -> dict[str, object]:
        return {"issued_at": self.issued_at, "expires_at": self.expires_at, "refresh_at": self.refresh_at}


def issue_ecard_code(
    session: Session, *, keyring: KeyRing, cipher: PiiCipher | None, view: EcardView, now: float
) -> IssuedCode:
    """A fresh code for a usable e-card; ``EcardNotUsableError`` if it is suspended or cancelled.

    ``cipher`` decrypts the birthdate for age facts; it is needed only when the citizen chose one.
    """
    citizen = usable_citizen(session, view)
    if citizen is None:
        raise EcardNotUsableError(f"e-card is {view.status}, or its citizen is not active")
    disclosures = {}
    chosen = list(view.ecard.disclosures or [])
    if chosen:
        if cipher is None:
            raise ValueError("a cipher is needed for the chosen disclosures")
        profile = decrypt_profile(cipher, citizen)
        disclosures = dict(
            disclosure_values(chosen, birthdate=profile.birthdate, region=view.region, now=now)
        )
    keys = keyring.key_set(QR_SIGNING.name, now=now)
    signing = keys.keys[0] if len(keys) else None
    if signing is None or signing.private_key is None:
        raise QrKeyUnavailableError("no active QR signing key")
    text = issue_qr_token(
        key=signing,
        issuer=view.region,
        handle=view.ecard.handle,
        now=now,
        lifetime=CODE_LIFETIME,
        disclosures=disclosures,
    )
    issued_at = int(now)
    return IssuedCode(text, issued_at, issued_at + CODE_LIFETIME, issued_at + REFRESH_INTERVAL)


def qr_matrix(text: str) -> list[list[bool]]:
    """The code's modules with the 4-module quiet zone, encoded by ``qrcode`` at error correction M
    (docs/formats/essc1.md §4); base45 keeps it in alphanumeric mode."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()  # type: ignore[no-any-return]


def render_qr_svg(text: str) -> str:
    """The code as SVG: one path of horizontal runs (qrcode's own SVG writers draw every module separately,
    which costs more than encoding), crisp edges, white background."""
    matrix = qr_matrix(text)
    size = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size * 8}" '
        f'height="{size * 8}" shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


def qr_data_url(text: str) -> str:
    """The SVG as a ``data:`` URL for an ``<img>`` (the CSP allows ``img-src data:``)."""
    return "data:image/svg+xml;base64," + base64.b64encode(render_qr_svg(text).encode()).decode("ascii")
