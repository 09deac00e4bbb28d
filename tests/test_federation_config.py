"""The federation settings (``federation_*``), read once at start-up: bad ones stop it with a ConfigError
naming the setting, as every setting does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idp.config import ConfigError, Settings
from idp.federation.config import FederationConfig, is_entity_id
from sdk.keys import KeySet, generate_key

ANCHOR = "https://province.example.gov.cn"


def _settings(**changes: object) -> Settings:
    return Settings(env="test", issuer="https://city.example.gov.cn").replace(**changes)


def test_a_city_s_settings_are_read(tmp_path: Path) -> None:
    keys = KeySet.of([generate_key("ES256").public_only()])
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps({ANCHOR: keys.to_jwks()}))
    marks = tmp_path / "marks.json"
    marks.write_text(json.dumps(["eyJ.a.b"]))
    config = FederationConfig.from_settings(
        _settings(
            federation_roles="leaf, intermediate",
            federation_authority_hints=ANCHOR,
            federation_trust_anchors_file=str(anchors),
            federation_trust_marks_file=str(marks),
        )
    )
    assert config.entity_id == "https://city.example.gov.cn"
    assert config.is_authority and not config.is_anchor
    assert config.authority_hints == (ANCHOR,)
    assert config.anchors[ANCHOR].keys == keys
    assert config.trust_marks == ("eyJ.a.b",)


@pytest.mark.parametrize(
    ("changes", "file_text", "setting"),
    [
        ({"federation_roles": "emperor"}, None, "ONECARD_FEDERATION_ROLES"),
        ({"federation_roles": ""}, None, "ONECARD_FEDERATION_ROLES"),
        ({"federation_authority_hints": "not a url"}, None, "ONECARD_FEDERATION_AUTHORITY_HINTS"),
        ({"federation_authority_hints": "https://city.example.gov.cn"}, None, "AUTHORITY_HINTS"),
        ({"federation_statement_ttl": 0}, None, "ONECARD_FEDERATION_STATEMENT_TTL"),
        ({"federation_loa_high_trust_mark": " "}, None, "ONECARD_FEDERATION_LOA_HIGH_TRUST_MARK"),
        ({"federation_trust_anchors_file": "FILE"}, "not json", "ONECARD_FEDERATION_TRUST_ANCHORS_FILE"),
        ({"federation_trust_anchors_file": "FILE"}, "[]", "ONECARD_FEDERATION_TRUST_ANCHORS_FILE"),
        ({"federation_trust_anchors_file": "FILE"}, '{"ftp://x": {"keys": []}}', "TRUST_ANCHORS_FILE"),
        ({"federation_trust_anchors_file": "FILE"}, f'{{"{ANCHOR}": {{"keys": []}}}}', "no usable key"),
        ({"federation_trust_anchors_file": "FILE"}, f'{{"{ANCHOR}": {{"keys": 1}}}}', "TRUST_ANCHORS_FILE"),
        ({"federation_trust_anchors_file": "/no/such/file"}, None, "ONECARD_FEDERATION_TRUST_ANCHORS_FILE"),
        ({"federation_trust_marks_file": "FILE"}, '{"a": 1}', "ONECARD_FEDERATION_TRUST_MARKS_FILE"),
    ],
)
def test_bad_federation_settings_are_refused(
    tmp_path: Path, changes: dict[str, object], file_text: str | None, setting: str
) -> None:
    if file_text is not None:
        path = tmp_path / "file.json"
        path.write_text(file_text)
        changes = {name: str(path) if value == "FILE" else value for name, value in changes.items()}
    with pytest.raises(ConfigError, match=setting):
        FederationConfig.from_settings(_settings(**changes))


def test_production_entity_ids_are_https() -> None:
    assert is_entity_id("https://city.example.gov.cn/onecard", allow_http=False)
    assert not is_entity_id("http://city.example.gov.cn", allow_http=False)
    assert is_entity_id("http://city.example.gov.cn", allow_http=True)
    for bad in ("https://c.example/?x=1", "https://c.example/#f", "https://u@c.example", "https://", "", 7):
        assert not is_entity_id(bad, allow_http=True)
