"""examples/gate without a server: what it prints for images it cannot read and how it writes a verdict —
the same as ``onecard-gate`` (sdk.gate_cli), whose helpers it uses. The whole example, installed from the
wheel against a live wallet, runs in tests/test_sdk_wheel.py."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from examples.gate.gate import EXIT_ALL_PASSED, EXIT_REFUSED, Gate, run, scanned
from sdk.clock import FixedClock
from sdk.gate import VerifiedScan
from sdk.gate_cli import format_pass_line
from sdk.qr_token import Disclosures, VerifiedQrToken

NOW = 1_700_000_000.0


class _AcceptingVerifier:
    def __init__(self, disclosures: Disclosures) -> None:
        self.disclosures = disclosures

    def verify(self, text: str, now: float) -> VerifiedScan:
        token = VerifiedQrToken(
            "420100", "h2Pq9vXcT4mK8sLw", int(now), int(now) + 42, "c", "k", self.disclosures
        )
        return VerifiedScan(token, now)


def _gate(tmp_path: Path, disclosures: Disclosures) -> Gate:
    stub: Any = None  # run() and check() touch only the verifier
    return Gate(stub, stub, stub, _AcceptingVerifier(disclosures), tmp_path)  # type: ignore[arg-type]


def test_an_unreadable_image_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("this is not an image")
    out = io.StringIO()
    sources = scanned([tmp_path / "notes.png", tmp_path / "missing.png"], io.StringIO())
    status = run(_gate(tmp_path, {}), sources, out, FixedClock(NOW))
    lines = out.getvalue().splitlines()
    assert status == EXIT_REFUSED and len(lines) == 2
    assert all(line.startswith("ERROR cannot read image") for line in lines)


def test_the_example_prints_the_pass_line_onecard_gate_prints(tmp_path: Path) -> None:
    disclosures: Disclosures = {"age_over_60": True, "note": "", "visitor_type": "senior citizen"}
    out = io.StringIO()
    status = run(_gate(tmp_path, disclosures), scanned([], io.StringIO("ESSC1:x\n")), out, FixedClock(NOW))
    assert status == EXIT_ALL_PASSED
    assert out.getvalue() == format_pass_line("h2Pq9vXcT4mK8sLw", "420100", 42, disclosures) + "\n"
    assert out.getvalue() == (
        'PASS handle=h2Pq9vXcT4mK8sLw issuer=420100 expires_in=42s age_over_60=true note=""'
        ' visitor_type="senior citizen"\n'
    )
