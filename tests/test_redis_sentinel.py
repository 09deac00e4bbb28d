"""Redis behind Sentinel (DESIGN.md §12): ``ONECARD_REDIS_URL=redis+sentinel://...`` is parsed strictly
(idp.stores.redis_url), refused with a clear ConfigError when malformed (idp.config), and builds a client of
the master the Sentinels name (idp.stores.factory) — checked against a real Sentinel this test starts on a
free port, monitoring the shared test Redis. The shared Redis itself is never reconfigured or stopped: the
Sentinel watches it under a random service name, with failover timings far beyond the test's length, and
is stopped by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from idp.config import ConfigError, Settings, load_settings
from idp.db import Database
from idp.stores.factory import create_redis_client, create_store
from idp.stores.redis_store import RedisStore
from idp.stores.redis_url import RedisUrlError, SentinelUrl, parse_sentinel_url
from tests.fixtures.services import delete_redis_keys, random_redis_prefix, service_unavailable
from tests.support.nodes import free_port

# --- the URL -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://:s3cret@sentinel-a:26379,sentinel-b:26380/onecard/2",
            SentinelUrl((("sentinel-a", 26379), ("sentinel-b", 26380)), "onecard", 2, None, "s3cret"),
        ),
        # Port and database default; no credentials.
        (
            "redis+sentinel://sentinel-a,10.0.0.7/mymaster",
            SentinelUrl((("sentinel-a", 26379), ("10.0.0.7", 26379)), "mymaster"),
        ),
        ("redis+sentinel://sentinel-a/mymaster/", SentinelUrl((("sentinel-a", 26379),), "mymaster")),
        # An ACL user, a percent-encoded password, IPv6, and the Sentinels' own password.
        (
            "redis+sentinel://onecard:p%40ss%3Aw%2Frd@[::1]:26379,[fd00::7]/svc.prod-1/0?sentinel_password=s%26p",
            SentinelUrl((("::1", 26379), ("fd00::7", 26379)), "svc.prod-1", 0, "onecard", "p@ss:w/rd", "s&p"),
        ),
        ("REDIS+SENTINEL://h:1/a/15", SentinelUrl((("h", 1),), "a", 15)),
    ],
)
def test_sentinel_urls_parse(url: str, expected: SentinelUrl) -> None:
    parsed = parse_sentinel_url(url)
    assert parsed == expected
    assert (parsed.password, parsed.sentinel_password) == (expected.password, expected.sentinel_password)
    assert load_settings({}, redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://", "empty Sentinel host"),
        ("redis+sentinel:///onecard/0", "empty Sentinel host"),
        ("redis+sentinel://h1,,h2/onecard", "empty Sentinel host"),
        ("redis+sentinel://h1:26379", "missing /<service_name>"),
        ("redis+sentinel://h1:26379/", "must be /<service_name>"),
        ("redis+sentinel://h1:26379/onecard/0/extra", "must be /<service_name>"),
        ("redis+sentinel://h1:26379/onecard/zero", "not a non-negative integer"),
        ("redis+sentinel://h1:26379/onecard/-1", "not a non-negative integer"),
        ("redis+sentinel://h1:0/onecard", "1..65535"),
        ("redis+sentinel://h1:99999/onecard", "1..65535"),
        ("redis+sentinel://h1:port/onecard", "1..65535"),
        ("redis+sentinel://h_1:26379/onecard", "not host[:port]"),
        ("redis+sentinel://[::1/onecard", "not [IPv6]:port"),
        ("redis+sentinel://h1/on%20card", "not a Sentinel master name"),
        ("redis+sentinel://s3cret@h1/onecard", ":password@"),
        ("redis+sentinel://h1/onecard?password=x", "unknown query parameter"),
        ("redis+sentinel://h1/onecard#x", "fragment"),
        ("http://h1:26379/onecard", "must be redis://"),
    ],
)
def test_malformed_redis_urls_are_clear_config_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"ONECARD_REDIS_URL": url})
    message = str(raised.value)
    assert message.startswith("ONECARD_REDIS_URL") and problem in message
    assert "s3cret" not in message  # the URL holds the password: never echoed


@pytest.mark.parametrize(
    "url",
    [
        # Passwords pasted without percent-encoding: "/", "@" and ":" in them, in otherwise good URLs…
        "redis+sentinel://:s3cr/etpw@h1/mymaster",
        "redis+sentinel://:s3cr@etpw@h1/mymaster",
        "redis+sentinel://user:s3cr:etpw@h1/mymaster",
        "redis+sentinel://:s3cr/et@pw:x@h1,h2:26380/mymaster/1",
        # …and in URLs wrong elsewhere, where the error must still not carry the password.
        "redis+sentinel://:s3cr/etpw@h1,h_2/mymaster",
        "redis+sentinel://:s3cr/etpw@h1:0/mymaster",
        "redis+sentinel://:s3cr@et/pw@[::1/mymaster",
        "redis+sentinel://:s3cr/et:pw@h1",
    ],
)
def test_raw_passwords_with_url_delimiters_never_reach_an_error(url: str) -> None:
    try:
        parsed = parse_sentinel_url(url)
    except RedisUrlError as error:
        assert "s3cr" not in str(error) and "etpw" not in str(error)
    else:
        assert parsed.password is not None and parsed.password.startswith("s3cr")
        assert parsed.sentinels[0] == ("h1", 26379) and parsed.service_name == "mymaster"
    try:
        load_settings({"ONECARD_REDIS_URL": url})
    except ConfigError as error:
        assert "s3cr" not in str(error) and "etpw" not in str(error)


def test_a_raw_slash_in_the_password_is_read_as_part_of_it() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:s3cr/etpw@h1/mymaster")
    assert parsed.password == "s3cr/etpw" and parsed.sentinels == (("h1", 26379),)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1,s3cret_h/onecard", "Sentinel host #2 is not host[:port]"),
        ("redis+sentinel://[s3cret/onecard", "Sentinel host #1 is not [IPv6]:port"),
        ("redis+sentinel://h1,h2:s3cret/onecard", "the port of Sentinel host #2 is not 1..65535"),
    ],
)
def test_bad_hosts_are_named_by_their_place_not_their_text(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse_sentinel_url(url)
    assert str(raised.value) == problem


def test_a_malformed_url_with_a_password_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"ONECARD_REDIS_URL": "redis+sentinel://:hunter2-secret@h1:26379/on card/0"})
    assert "hunter2" not in str(raised.value)


def test_the_repr_of_a_parsed_url_has_no_password() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:hunter2@h1/onecard?sentinel_password=hunter3")
    assert "hunter" not in repr(parsed)


def test_plain_redis_urls_are_read_as_before() -> None:
    # No connection is made: redis-py connects on the first command.
    plain = create_redis_client("redis://:pw@127.0.0.1:6390/3")
    tls = create_redis_client("rediss://127.0.0.1:6390/0")
    try:
        assert plain.connection_pool.connection_class is redis.Connection
        assert plain.connection_pool.connection_kwargs["db"] == 3
        assert tls.connection_pool.connection_class is redis.SSLConnection
    finally:
        plain.close()
        tls.close()


def test_a_sentinel_url_builds_a_client_of_the_named_master() -> None:
    client = create_redis_client("redis+sentinel://:pw@h1:26379,h2:26380/onecard/4?sentinel_password=sp")
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "onecard" and pool.is_master
        assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "pw"
        sentinels = pool.sentinel_manager.sentinels
        assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
        assert all(s.connection_pool.connection_kwargs["password"] == "sp" for s in sentinels)
    finally:
        client.close()


# --- a real Sentinel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningSentinel:
    port: int
    service_name: str
    process: subprocess.Popen[bytes]


def sentinel_command(config: Path) -> list[str]:
    """Debian's redis-sentinel, or redis-server in Sentinel mode (the same binary); else skip (fail on CI)."""
    if binary := shutil.which("redis-sentinel"):
        return [binary, str(config)]
    if binary := shutil.which("redis-server"):
        return [binary, str(config), "--sentinel"]
    service_unavailable("neither redis-sentinel nor redis-server is installed (apt-get install redis-server)")


@pytest.fixture
def sentinel(redis_url: str, tmp_path: Path) -> Iterator[RunningSentinel]:
    """A Sentinel on a free port monitoring the shared test Redis under a random service name (so runs
    sharing the Redis never meet each other's Sentinels), stopped by PID."""
    target = urlsplit(redis_url)
    port = free_port()
    service_name = f"onecard-test-{secrets.token_hex(4)}"
    config = tmp_path / "sentinel.conf"
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "daemonize no",
        f"dir {tmp_path}",  # Sentinel rewrites its config file; keep everything in the test's directory
        f"sentinel monitor {service_name} {target.hostname or '127.0.0.1'} {target.port or 6379} 1",
        # Never a failover while the test runs: the shared Redis stays the master it is.
        f"sentinel down-after-milliseconds {service_name} 600000",
        f"sentinel failover-timeout {service_name} 600000",
    ]
    if target.password:
        lines.append(f"sentinel auth-pass {service_name} {target.password}")
    config.write_text("\n".join(lines) + "\n")
    log = (tmp_path / "sentinel.log").open("wb")
    process = subprocess.Popen(sentinel_command(config), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"Sentinel exited with {process.returncode}: {(tmp_path / 'sentinel.log').read_text()}"
                )
            try:
                if probe.sentinel_get_master_addr_by_name(service_name):
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Sentinel did not start monitoring within 15 s")
            time.sleep(0.05)
        probe.close()
        yield RunningSentinel(port, service_name, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_the_store_round_trips_through_a_real_sentinel(
    sentinel: RunningSentinel, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    db = urlsplit(redis_url).path.strip("/") or "0"
    password = urlsplit(redis_url).password
    credentials = f":{password}@" if password else ""
    # A Sentinel that is down first: the client goes on to the next one in the list.
    dead = free_port()
    url = f"redis+sentinel://{credentials}127.0.0.1:{dead},127.0.0.1:{sentinel.port}/{sentinel.service_name}/{db}"
    prefix = random_redis_prefix()
    settings = Settings(env="test", redis_url=url, redis_prefix=prefix)
    store = create_store(settings, Database(f"sqlite:///{tmp_path}/unused.sqlite3"))
    assert isinstance(store, RedisStore)
    try:
        now = time.time()
        value = os.urandom(16)
        store.put("sentinel", "round-trip", value, ttl=60, now=now)
        assert store.get("sentinel", "round-trip", now=now) == value
        assert store.take("sentinel", "round-trip", now=now) == value
        assert store.get("sentinel", "round-trip", now=now) is None
        assert store.add("sentinel", "once", b"1", ttl=60, now=now) and not store.add(
            "sentinel", "once", b"2", ttl=60, now=now
        )
        # It was the shared Redis the Sentinel named: the entry is there under the prefix, read directly.
        assert any(redis_client.scan_iter(match=f"{prefix}:*"))
        pool = store.client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        target = urlsplit(redis_url)
        master = pool.get_master_address()  # type: ignore[no-untyped-call]
        assert master == (target.hostname, target.port or 6379)
    finally:
        delete_redis_keys(redis_client, prefix)
        store.client.close()
