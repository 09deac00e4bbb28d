"""Settings: ONECARD_* variables over an optional TOML file, validated at start-up (idp.config).

A typo must fail rather than fall back to a default, a value of the wrong type must name its setting, and
production refuses the settings that are only safe on a laptop. Every test passes its own ``environ``, so
the machine's environment plays no part.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from idp.config import DEVELOPMENT_KEK, ConfigError, Settings, load_settings

OWN_KEK = "cHJvZHVjdGlvbi1rZWstZm9yLXRoZS10ZXN0LW9ubHk"
PRODUCTION = {
    "ONECARD_ENV": "production",
    "ONECARD_ISSUER": "https://id.example.gov.cn",
    "ONECARD_DATABASE_URL": "postgresql://onecard@db.internal/onecard",
    "ONECARD_KEK": OWN_KEK,
    "ONECARD_PAIRWISE_SALT": "a-long-random-salt",
}


def test_defaults_are_a_development_setup() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.env == "development" and not settings.is_production
    assert settings.database_url.startswith("sqlite:")
    assert settings.key_encryption_keys() == [DEVELOPMENT_KEK]


def test_environment_variables_set_fields_with_their_types() -> None:
    settings = load_settings(
        {
            "ONECARD_ENV": "test",
            "ONECARD_DEBUG": "yes",
            "ONECARD_ACCESS_TOKEN_TTL": "300",
            "ONECARD_BACK_CHANNEL_LOGOUT_TIMEOUT": "1.5",
            "ONECARD_REDIS_URL": "redis://127.0.0.1:6379/1",
            "PATH": "/usr/bin",  # not ours: ignored
        }
    )
    assert settings.env == "test" and settings.debug is True
    assert settings.access_token_ttl == 300
    assert settings.back_channel_logout_timeout == 1.5
    assert settings.redis_url == "redis://127.0.0.1:6379/1"


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on", " True "])
def test_booleans_true(raw: str) -> None:
    assert load_settings({"ONECARD_DEBUG": raw}).debug is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_booleans_false(raw: str) -> None:
    assert load_settings({"ONECARD_DEBUG": raw}).debug is False


def test_unknown_variable_fails() -> None:
    with pytest.raises(ConfigError, match="unknown setting ONECARD_ACESS_TOKEN_TTL"):
        load_settings({"ONECARD_ACESS_TOKEN_TTL": "60"})


def test_variables_of_the_test_suite_and_the_bridge_are_not_server_settings() -> None:
    settings = load_settings(
        {"ONECARD_TEST_DATABASE_URL": "postgresql://x/y", "ONECARD_BRIDGE_PORT": "24727"}
    )
    assert settings == Settings()


def test_unknown_override_fails() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings({}, colour="blue")


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("ONECARD_ACCESS_TOKEN_TTL", "ten minutes", "ONECARD_ACCESS_TOKEN_TTL: invalid literal for int"),
        (
            "ONECARD_BACK_CHANNEL_LOGOUT_TIMEOUT",
            "soon",
            "ONECARD_BACK_CHANNEL_LOGOUT_TIMEOUT: could not convert",
        ),
        ("ONECARD_DEBUG", "maybe", "ONECARD_DEBUG: not a boolean: 'maybe'"),
        ("ONECARD_ACCESS_TOKEN_TTL", "0", "ONECARD_ACCESS_TOKEN_TTL must be positive"),
        ("ONECARD_SSO_SESSION_TTL", "-5", "ONECARD_SSO_SESSION_TTL must be positive"),
        ("ONECARD_PAR_REQUEST_TTL", "0", "ONECARD_PAR_REQUEST_TTL must be positive"),
        ("ONECARD_PAR_REQUEST_TTL", "601", "ONECARD_PAR_REQUEST_TTL must be at most 600 seconds"),
        ("ONECARD_DPOP_NONCE_LIFETIME", "0", "ONECARD_DPOP_NONCE_LIFETIME must be positive"),
        ("ONECARD_ENV", "staging", "ONECARD_ENV must be development, production or test, not 'staging'"),
        ("ONECARD_ISSUER", "id.example", "ONECARD_ISSUER must be an http(s) URL"),
        ("ONECARD_ISSUER", "https://id.example/?tenant=1", "ONECARD_ISSUER must be an http(s) URL"),
        ("ONECARD_ISSUER", "https://id.example/", "ONECARD_ISSUER must not end with '/'"),
        ("ONECARD_KEK", " , ", "ONECARD_KEK is empty"),
    ],
)
def test_bad_values_name_the_setting(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: raw})
    assert str(caught.value).startswith(message)


# Production ---------------------------------------------------------------------------------------------


def test_a_complete_production_configuration_loads() -> None:
    settings = load_settings(PRODUCTION)
    assert settings.is_production and settings.is_secure_issuer
    assert settings.key_encryption_keys() == [OWN_KEK]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"ONECARD_DEBUG": "1"}, "ONECARD_DEBUG must be off"),
        ({"ONECARD_KEK": DEVELOPMENT_KEK}, "ONECARD_KEK is the development default"),
        ({"ONECARD_KEK": f"{OWN_KEK},{DEVELOPMENT_KEK}"}, "ONECARD_KEK is the development default"),
        ({"ONECARD_ISSUER": "http://id.example.gov.cn"}, "ONECARD_ISSUER must use https"),
        ({"ONECARD_DATABASE_URL": "sqlite:///var/onecard.sqlite3"}, "must name a server database"),
        ({"ONECARD_PAIRWISE_SALT": ""}, "ONECARD_PAIRWISE_SALT must be set"),
    ],
)
def test_production_refuses_unsafe_settings(change: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**PRODUCTION, **change})
    message = str(caught.value)
    assert message.startswith("unsafe production settings: ")
    assert problem in message


def test_production_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ONECARD_ENV": "production", "ONECARD_DEBUG": "true"})
    message = str(caught.value)
    for problem in (
        "ONECARD_DEBUG",
        "ONECARD_KEK",
        "ONECARD_ISSUER",
        "ONECARD_PAIRWISE_SALT",
        "ONECARD_DATABASE_URL",
    ):
        assert problem in message
    assert "\n" not in message  # one line for the operator


def test_production_key_encryption_key_from_a_file(tmp_path: Path) -> None:
    kek_file = tmp_path / "kek"
    kek_file.write_text(f"{OWN_KEK}\n")
    settings = load_settings(
        {**PRODUCTION, "ONECARD_KEK": DEVELOPMENT_KEK, "ONECARD_KEK_FILE": str(kek_file)}
    )
    # The file wins over the variable, so the development default left in the environment does no harm.
    assert settings.key_encryption_keys() == [OWN_KEK]


# The TOML file ------------------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "onecard.toml"
    path.write_text(text, encoding="utf-8")
    return {"ONECARD_CONFIG_FILE": str(path)}


def test_toml_file_sets_fields(tmp_path: Path) -> None:
    environ = write_config(
        tmp_path,
        'env = "test"\nissuer = "https://id.example"\ndebug = true\naccess_token_ttl = 900\n'
        "back_channel_logout_timeout = 2.5\n",
    )
    settings = load_settings(environ)
    assert settings.env == "test" and settings.issuer == "https://id.example"
    assert settings.debug is True and settings.access_token_ttl == 900
    assert settings.back_channel_logout_timeout == 2.5


def test_environment_overrides_the_file_and_overrides_override_both(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "access_token_ttl = 900\nid_token_ttl = 900\n")
    settings = load_settings({**environ, "ONECARD_ACCESS_TOKEN_TTL": "120"}, id_token_ttl=60)
    assert settings.access_token_ttl == 120 and settings.id_token_ttl == 60


def test_toml_unknown_key_fails(tmp_path: Path) -> None:
    environ = write_config(tmp_path, 'issuer = "https://id.example"\nisuer = "typo"\n')
    with pytest.raises(ConfigError, match="unknown setting 'isuer'"):
        load_settings(environ)


def test_toml_wrong_type_names_the_setting(tmp_path: Path) -> None:
    environ = write_config(tmp_path, 'access_token_ttl = "ten minutes"\n')
    with pytest.raises(ConfigError, match="ONECARD_ACCESS_TOKEN_TTL: invalid literal for int"):
        load_settings(environ)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    environ = write_config(tmp_path, "access_token_ttl = \n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(f"ONECARD_CONFIG_FILE {environ['ONECARD_CONFIG_FILE']}: ")


def test_missing_toml_file_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ONECARD_CONFIG_FILE .*nowhere\.toml"):
        load_settings({"ONECARD_CONFIG_FILE": str(tmp_path / "nowhere.toml")})


def test_production_is_validated_after_the_file_is_read(tmp_path: Path) -> None:
    environ = write_config(tmp_path, 'env = "production"\nissuer = "http://id.example"\n')
    with pytest.raises(ConfigError, match="ONECARD_ISSUER must use https"):
        load_settings(environ)


def test_the_bridge_url_and_the_qr_poll_are_settings_not_app_config(tmp_path: Path) -> None:
    """Exporting ONECARD_CARD_BRIDGE_URL used to make the server refuse to start (an unknown setting)."""
    settings = load_settings(
        {"ONECARD_CARD_BRIDGE_URL": "http://127.0.0.1:47401", "ONECARD_QR_LOGIN_POLL_SECONDS": "5"}
    )
    assert settings.card_bridge_url == "http://127.0.0.1:47401" and settings.qr_login_poll_seconds == 5.0
    for url in (
        "https://127.0.0.1:47400",
        "http://bridge.example.com:47400",
        "http://127.0.0.1:47400/x",
        "http://localhost:47400",  # the pages' CSP reaches 127.0.0.1 only
    ):
        with pytest.raises(ConfigError, match="ONECARD_CARD_BRIDGE_URL"):
            load_settings({"ONECARD_CARD_BRIDGE_URL": url})
    with pytest.raises(ConfigError, match="ONECARD_QR_LOGIN_POLL_SECONDS"):
        load_settings({"ONECARD_QR_LOGIN_POLL_SECONDS": "0"})
    from idp.app import create_app

    app = create_app(
        load_settings(
            {
                "ONECARD_CARD_BRIDGE_URL": "http://127.0.0.1:47401",
                "ONECARD_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            }
        ),
        plugins=[],
    )
    page = app.test_client().get("/card/pin")  # the page that sends the citizen to their bridge
    assert page.status_code == 200 and "http://127.0.0.1:47401" in page.get_data(as_text=True)
