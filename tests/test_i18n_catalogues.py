"""The message catalogues (issue #14, items 1 and 2): nothing a page, a script or the bridge says is missing
from its Chinese catalogue, every translation keeps its placeholders and markup, the glossary's words are
the ones used, and the compiled catalogues are built (scripts/setup.sh, setup.py), never committed.

The extraction is pybabel's own (``idp/babel.cfg`` and the other packages' configs, with the extraction
method of ``idp/i18n_extract.py``), run here in-process: a new text that nobody translated fails this test
until ``make messages`` has merged it and a person has translated it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
# catalogue directory → (babel config, what it reads)
CATALOGUES = {
    "idp/translations": ("idp/babel.cfg", ("idp", "sdk/errors.py")),
    "wallet/translations": ("wallet/babel.cfg", ("wallet",)),
    "halls/translations": ("halls/babel.cfg", ("halls",)),
    "examples/portal/translations": ("examples/portal/babel.cfg", ("examples/portal",)),
    "reader_bridge/translations": ("reader_bridge/babel.cfg", ("reader_bridge",)),
}
LOCALE = "zh_Hans_CN"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+\}")
TAG = re.compile(r"</?[a-z]+[^>]*>")


def _extracted(directory: str) -> set[str | tuple[str, ...]]:
    config, inputs = CATALOGUES[directory]
    with (ROOT / config).open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)  # type: ignore[no-untyped-call]
    found: set[str | tuple[str, ...]] = set()
    for source in inputs:
        path = ROOT / source
        if path.is_dir():
            messages = extract_from_dir(path, method_map, options_map, keywords=KEYWORDS)
            found.update(message for _file, _line, message, _comments, _context in messages)
        else:
            method = next(method for pattern, method in method_map if pattern.endswith("**.py"))
            found.update(
                message
                for _line, message, _comments, _context in extract_from_file(method, path, keywords=KEYWORDS)
            )
    return found


def _catalogue(directory: str) -> Catalog:
    with (ROOT / directory / LOCALE / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=LOCALE)


@pytest.mark.parametrize("directory", sorted(CATALOGUES))
def test_every_message_has_its_chinese(directory: str) -> None:
    catalogue = _catalogue(directory)
    translated = {message.id: message for message in catalogue if message.id}
    extracted = _extracted(directory)
    assert extracted, "the extraction found nothing: is the babel config right?"
    missing = sorted(map(str, extracted - translated.keys()))
    assert missing == [], f"new messages: run `make messages`, then translate them: {missing}"
    untranslated = sorted(
        str(message.id)
        for message in translated.values()
        if message.id in extracted
        and (
            "fuzzy" in message.flags
            or not all(message.string if isinstance(message.string, tuple) else [message.string])
        )
    )
    assert untranslated == []
    stale = sorted(map(str, translated.keys() - extracted))
    assert stale == [], f"no longer used (run `make messages`): {stale}"


@pytest.mark.parametrize("directory", sorted(CATALOGUES))
def test_translations_keep_placeholders_and_markup(directory: str) -> None:
    for message in _catalogue(directory):
        if not message.id:
            continue
        source = str(message.id if isinstance(message.id, str) else message.id[0])
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for translation in map(str, strings):
            assert sorted(PLACEHOLDER.findall(translation)) == sorted(PLACEHOLDER.findall(source)), source
            assert len(TAG.findall(translation)) == len(TAG.findall(source)), source
            assert re.search(r"[\u4e00-\u9fff]", translation) or not re.search("[A-Za-z]{3}", source), source


# The glossary (docs/glossary.md): the terms citizens know from the card and the national e-card. A catalogue
# never uses the word on the right for the English on the left.
AVOIDED = {
    "PIN": ("PIN码", "口令", "个人识别码"),
    "card reader": ("读卡机", "刷卡器"),
    "reported lost": ("丢失",),
    "electronic social security card": ("电子卡", "电子社会保障卡"),
    "passkey": ("通行密码", "密钥对"),
}


def test_the_glossary_is_kept() -> None:
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    for term in (
        "社会保障卡",
        "电子社保卡",
        "密码",
        "读卡器",
        "挂失",
        "扫码登录",
        "授权",
        "社保卡服务网点",
        "北京时间",
    ):
        assert term in glossary, term
    for directory in CATALOGUES:
        for message in _catalogue(directory):
            if not message.id:
                continue
            source = str(message.id if isinstance(message.id, str) else message.id[0])
            text = "".join(message.string) if isinstance(message.string, tuple) else str(message.string)
            for english, words in AVOIDED.items():
                if english.lower() in source.lower():
                    assert not any(word in text for word in words), (source, text)


def test_compiled_catalogues_are_built_not_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.mo"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == []
    assert "*.mo" in (ROOT / ".gitignore").read_text().splitlines()
    assert "pybabel -q compile" in (ROOT / "scripts" / "setup.sh").read_text()
    assert "write_mo" in (ROOT / "setup.py").read_text()
