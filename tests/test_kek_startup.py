"""A server whose key-encryption key cannot open its stored keys refuses to start (DESIGN.md §7), in every
mode and through every start path (``onecard serve``, ``idp.wsgi`` for gunicorn), rather than answer
discovery and fail every signing request with a 500. The message names the setting, never key material."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import idp.models  # noqa: F401 - every table on the metadata
from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.config import DEVELOPMENT_KEK, ConfigError, Settings, load_settings
from idp.crypto.kek import KeyEncryptionKeys
from idp.services import Services

# 32 bytes each, base64url: stand-ins for a deployment's own KEKs.
DEPLOYED_KEK = "ZGVwbG95ZWQta2V5LWVuY3J5cHRpb24ta2V5LTAxMjM"
OTHER_KEK = "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTAxMjM0NTY"


def deployed_kek_id() -> str:
    return KeyEncryptionKeys.from_strings([DEPLOYED_KEK]).current_id.hex()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kek.sqlite3'}"
    dbadmin.upgrade(url)
    return url


def start(settings: Settings) -> Services:
    """What every start path does: build the app, then ``initialise_keys``."""
    app = create_app(settings, plugins=[])
    svc: Services = app.extensions["onecard"]
    try:
        initialise_keys(app)
    finally:
        svc.database.dispose()
    return svc


@pytest.fixture
def keys_under_the_deployed_kek(database_url: str) -> str:
    start(Settings(env="test", database_url=database_url, kek=DEPLOYED_KEK))
    return database_url


@pytest.mark.parametrize(
    ("env", "kek"),
    [
        ("development", DEVELOPMENT_KEK),  # ONECARD_KEK not set: a laptop falls back to the development KEK
        ("production", OTHER_KEK),  # the wrong key deployed
        ("test", OTHER_KEK),
    ],
    ids=["development-without-kek", "production-wrong-kek", "test-wrong-kek"],
)
def test_a_kek_that_cannot_open_the_stored_keys_refuses_to_start(
    keys_under_the_deployed_kek: str, env: str, kek: str
) -> None:
    # Settings built directly, past load_settings' production checks (which refuse SQLite and the
    # development KEK on their own): this is the key layer's check, whatever the mode.
    settings = Settings(env=env, database_url=keys_under_the_deployed_kek, kek=kek)
    with pytest.raises(ConfigError) as refused:
        start(settings)
    message = str(refused.value)
    assert "ONECARD_KEK" in message and deployed_kek_id() in message
    for material in (DEPLOYED_KEK, OTHER_KEK, DEVELOPMENT_KEK):
        assert material not in message


def test_the_right_kek_and_a_rotation_in_progress_start(keys_under_the_deployed_kek: str) -> None:
    start(Settings(env="test", database_url=keys_under_the_deployed_kek, kek=DEPLOYED_KEK))
    # KEK rotation step 2: the new KEK first, the old one still listed — everything opens.
    start(Settings(env="test", database_url=keys_under_the_deployed_kek, kek=f"{OTHER_KEK},{DEPLOYED_KEK}"))


def test_an_empty_database_starts_with_any_kek(database_url: str) -> None:
    start(Settings(env="test", database_url=database_url, kek=OTHER_KEK))


def test_a_missing_kek_file_is_a_configuration_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"ONECARD_KEK_FILE": str(tmp_path / "no-such-kek")})
    assert "ONECARD_KEK_FILE" in str(refused.value)


@pytest.fixture
def server_env(keys_under_the_deployed_kek: str) -> Iterator[dict[str, str]]:
    """A development node's environment without ONECARD_KEK, on the database whose keys need it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ONECARD_")}
    env.update(ONECARD_DATABASE_URL=keys_under_the_deployed_kek, ONECARD_ENV="development")
    yield env


def _assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ONECARD_KEK" in output and deployed_kek_id() in output
    assert DEPLOYED_KEK not in output and DEVELOPMENT_KEK not in output


def test_onecard_serve_refuses_to_start(server_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from idp.cli import main; main()", "serve", "--dev", "--port", "0"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _assert_refused(result)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_the_wsgi_module_gunicorn_loads_refuses_to_start(server_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import idp.wsgi"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _assert_refused(result)
