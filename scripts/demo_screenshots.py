"""Screenshots for the README's walkthrough: drives a running demo (``make run`` / ``onecard demo run``) in
headless Chromium and writes PNGs to docs/images/.

    .venv/bin/onecard demo run --no-open-dialog &      # in another terminal, or as here in the background
    .venv/bin/python scripts/demo_screenshots.py [--portal URL] [--idp URL] [--demo-dir var] [--out DIR]

The pages are in the browser's language, Chinese by default (``--lang en-GB`` for English ones).

The walk: the portal → "Log in with card" → OneCard's login page → the card page → the bridge's PIN dialog
(PIN 123456) → consent → the portal's verified claims → the wallet: activate the e-card → bind a passkey (the
DevTools virtual authenticator stands in for the browser's passkey UI) → scan-to-login: a second, desktop
browser context (no OneCard session) clicks "Log in with e-card" and picks the QR method; the QR code is
decoded from that screenshot (zxing-cpp) and opened on the phone, which picks the match code and approves
with the passkey bound before; the desktop lands logged in at the portal → the gate code, which is then
verified with ``onecard-gate`` offline and online (its output is printed, for the README). Uses Debian's
Chromium (never ``playwright install``). Each run logs the demo citizen in afresh; run it on a fresh demo
(a new ``--dir``/database) for pictures of first-time activation.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import ViewportSize

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIN = "123456"  # demo.data.DEMO_PIN
DESKTOP: ViewportSize = {"width": 1000, "height": 800}
PHONE: ViewportSize = {"width": 412, "height": 800}


class Shots:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str, *, full_page: bool = False) -> Path:
        path = self.out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        optimise(path)
        self.taken.append(path)
        print(f"  {path} ({path.stat().st_size // 1024} KiB)")
        return path


def optimise(path: Path) -> None:
    """Fewer colours (screenshots of flat pages lose nothing visible) and maximal zlib compression."""
    image = Image.open(path).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def decode_qr(path: Path) -> str:
    """The text of the one QR code in the PNG at ``path``."""
    results = zxingcpp.read_barcodes(Image.open(path))
    texts = [r.text for r in results if r.format == zxingcpp.BarcodeFormat.QRCode]
    if len(texts) != 1:
        raise RuntimeError(f"expected one QR code in {path}, found {len(texts)}")
    return texts[0]


def qr_login(
    browser: Any, phone: Any, args: argparse.Namespace, shots: Shots, portal_home: re.Pattern[str]
) -> None:
    """Scan-to-login: a computer with no OneCard session shows the QR code; ``phone`` (the wallet's page,
    whose virtual authenticator holds the bound passkey) opens it, picks the match code and approves."""
    desktop = browser.new_context(viewport=DESKTOP, locale=args.lang)
    try:
        computer = desktop.new_page()
        computer.goto(f"{args.portal}/")
        computer.click("#login-ecard")
        computer.wait_for_url(re.compile(r".*/login/.*"))
        computer.click("#start-qr")
        computer.wait_for_selector("#qr-login[data-state=waiting]")
        code = computer.inner_text("#match-code").strip()
        url = decode_qr(shots.take(computer, "10-qr-login-computer"))
        if not url.startswith(f"{args.idp}/wallet/qr-login/"):
            raise RuntimeError(f"unexpected URL in the QR code: {url}")
        print(f"  QR code → {url}, match code {code}")

        phone.goto(url)
        phone.wait_for_selector(".match-choice")
        computer.wait_for_selector("#qr-login[data-state=scanned]", timeout=10_000)
        shots.take(phone, "11-qr-login-phone", full_page=True)
        phone.click(f"#choice-{code}")
        phone.click("#qr-approve-button")
        phone.wait_for_selector("#qr-result[data-outcome=approved]", timeout=10_000)

        allow_consent(computer, None, "", portal_home)
        computer.wait_for_selector("#claims")
        shots.take(computer, "12-qr-login-portal", full_page=True)
    finally:
        desktop.close()


def add_virtual_authenticator(context: Any, page: Any) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )


def card_login(page: Any, shots: Shots | None) -> None:
    """On OneCard's login page: choose the card, type the PIN into the bridge's dialog."""
    if "/card" not in page.url:
        if shots:
            shots.take(page, "02-login-choose")
        page.click("#start-card")
        page.wait_for_url("**/card")
    page.wait_for_selector("#start", state="visible")
    page.click("#start")
    page.wait_for_selector("#pin-link", state="visible")
    if shots:
        shots.take(page, "03-card-login-enter-pin")
    with page.context.expect_page() as opened:
        page.click("#pin-link")
    dialog = opened.value
    dialog.set_viewport_size({"width": 560, "height": 520})
    dialog.wait_for_load_state()
    dialog.fill("#pin", PIN)
    if shots:
        shots.take(dialog, "04-bridge-pin-dialog")
    dialog.click("button[value=submit]")
    dialog.wait_for_load_state()
    dialog.close()


def allow_consent(page: Any, shots: Shots | None, name: str, until: re.Pattern[str]) -> None:
    page.wait_for_url(re.compile(rf"(.*/consent/.*)|({until.pattern})"), timeout=30_000)
    if "/consent/" in page.url:
        if shots:
            shots.take(page, name)
        page.click("#allow")
    page.wait_for_url(until, timeout=30_000)


def gate(args: argparse.Namespace, image: Path) -> None:
    """Verify the code in ``image`` offline, then online (the online check uses it up)."""
    venue_file = Path(args.demo_dir) / "demo-venue.json"
    gate_cli = [sys.executable, "-m", "sdk.gate_cli", "verify", "--image", str(image)]
    with tempfile.TemporaryDirectory() as state:
        commands = [
            [
                *gate_cli,
                "--offline",
                "--jwks",
                f"{args.idp}/.well-known/onecard-qr-keys.json",
                "--issuer",
                "420100",
                "--revoked",
                f"{args.idp}/api/v1/gate/suspended-handles",
                "--credentials",
                str(venue_file),
                "--state-dir",
                state,
            ],
            [
                *gate_cli,
                "--online",
                "--url",
                args.idp,
                "--credentials",
                str(venue_file),
                "--gate-id",
                "east-1",
            ],
        ]
        for command in commands:
            result = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
                command, capture_output=True, text=True, timeout=60
            )
            print(f"  onecard-gate verify {command[6]} … → {result.stdout.strip() or result.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--portal", default="http://127.0.0.1:8001")
    parser.add_argument("--idp", default="http://localhost:8000", help="the demo's public issuer")
    parser.add_argument("--demo-dir", default="var", help="the demo's --dir (venue credentials)")
    parser.add_argument("--out", default="docs/images", type=Path)
    parser.add_argument(
        "--lang", default="zh-CN", help="the browser's language: zh-CN (the README's pictures) or en-GB"
    )
    args = parser.parse_args()
    executable = shutil.which("chromium")
    if executable is None:
        print("Debian's chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    shots = Shots(args.out)
    portal_home = re.compile(rf"{re.escape(args.portal)}/(\?.*)?$")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=DESKTOP, locale=args.lang)
        page = context.new_page()
        add_virtual_authenticator(context, page)

        # 1. The portal, and log in by card.
        page.goto(f"{args.portal}/")
        shots.take(page, "01-portal")
        page.click("#login-card")
        page.wait_for_url(re.compile(r".*/login/.*"))
        card_login(page, shots)
        allow_consent(page, shots, "05-consent", portal_home)
        page.wait_for_selector("#claims")
        shots.take(page, "06-portal-claims", full_page=True)

        # 2. The wallet: log in (SSO from the portal's card login), activate, bind a passkey.
        page.set_viewport_size(PHONE)
        page.goto(f"{args.idp}/wallet/login-card")
        page.wait_for_url(re.compile(r".*/(wallet/|consent/|login/).*"))
        if "/login/" in page.url:
            card_login(page, None)
        allow_consent(page, None, "", re.compile(r".*/wallet/$"))
        if page.locator("#activate-1").count():
            shots.take(page, "07-wallet-activate", full_page=True)
            page.click("#activate-1")
            page.wait_for_selector("#ecard-status")
        shots.take(page, "08-wallet-ecard", full_page=True)
        page.goto(f"{args.idp}/wallet/devices")
        device = "我的手机" if args.lang.startswith("zh") else "My phone"
        page.fill("#device-name", device)
        page.click("#passkey-register")
        page.wait_for_selector(f"td:text-is('{device}')", timeout=10_000)
        shots.take(page, "09-wallet-passkey", full_page=True)

        # 3. Log in by QR on another computer, approved on this phone with its passkey.
        qr_login(browser, page, args, shots, portal_home)

        # 4. The gate code, verified by onecard-gate from a screenshot of it.
        page.goto(f"{args.idp}/wallet/code")
        page.wait_for_selector("#qr")
        page.wait_for_function("/\\d/.test(document.getElementById('countdown').textContent)")
        shots.take(page, "13-wallet-code", full_page=True)
        with tempfile.TemporaryDirectory() as scratch:
            code_png = Path(scratch) / "code.png"
            page.locator("#qr").screenshot(path=str(code_png))
            gate(args, code_png)
        context.close()
        browser.close()
    total = sum(path.stat().st_size for path in shots.taken)
    print(f"{len(shots.taken)} screenshots, {total // 1024} KiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
