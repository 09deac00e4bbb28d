"""Reading a QR code off a browser screenshot with zxing-cpp, as a phone's camera would."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in the PNG ``png``."""
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    texts = [r.text for r in results if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(texts) == 1, f"expected one QR code in the screenshot, found {len(texts)}"
    return texts[0]
