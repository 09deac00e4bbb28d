"""Latency of the three per-person lookups at 10 k and at N citizens and cards (issue 16 item 5).

    .venv/bin/python -m bench.bench_scale seed --url postgresql://postgres@127.0.0.1/scale_10m -n 10000000
    .venv/bin/python -m bench.bench_scale measure --small URL_10K --large URL_10M

``seed`` migrates an empty database and fills it fast: N citizens (PII encrypted and blind-indexed exactly
as the register does it, ``idp.citizens.service.encrypted_citizen_values``), N cards and N e-cards, with
``COPY … FROM STDIN`` on PostgreSQL and ``executemany`` in large transactions on SQLite; the indexes are
the schema's own, kept during the load. Then ``MEASURED`` real citizens with real cards (issued by the
region CA, so they can log in) and e-cards, a venue and the bench's clients, through the services.

``measure`` runs, on each database in turn, in process (no HTTP: what grows with N is the database work):
- card login verify: ``authenticate_card`` for a pre-signed token (the card signs before the clock starts)
  and its commit — challenge take, certificate, register lookup of card + holder, audit event;
- real-name verify: ``verify_realname`` by ID number (blind index lookup, decrypt, compare), for filler
  citizens picked at random across the whole register, so the index is walked cold as well as warm;
- gate verify: ``decide_gate_code`` for a fresh code (signature, e-card + card by handle, holder, one-time
  cti in the short-lived store).
and prints p50/p99 per figure and the N : 10 k ratio of the medians (target ≤ 1.2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figure

MEASURED = 200  # real cards: each login in the measurement uses one, round robin
BATCH = 20_000
REGION = "420100"
TARGET_RATIO = 1.2
PIN = "123456"
BASE_DAY = dt.date(1940, 1, 1)


def filler_identity(index: int) -> tuple[str, str]:
    """A distinct, valid name and ID number per index (region 420106, a birth date per 1,000, a sequence)."""
    from idp.citizens.idnumber import check_character

    born = BASE_DAY + dt.timedelta(days=index // 1000)
    first17 = f"420106{born:%Y%m%d}{index % 1000:03d}"
    return f"市民{index}", first17 + check_character(first17)


def _uuid_text(value: int) -> str:
    """``str(uuid.UUID(int=value))`` without building the object (a few microseconds a row at 10 M rows)."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _citizen_ids(start: int, count: int) -> list[str]:
    return [_uuid_text(0xB0 << 120 | index) for index in range(start, start + count)]


def _rows(cipher: Any, start: int, count: int, at: dt.datetime) -> tuple[list[tuple[Any, ...]], ...]:
    from idp.citizens.service import encrypted_citizen_values
    from idp.crypto.pii import PiiField

    citizens, cards, ecards = [], [], []
    today = at.date()
    expires = today + dt.timedelta(days=3650)
    for index, citizen_id in zip(range(start, start + count), _citizen_ids(start, count), strict=True):
        name, number = filler_identity(index)
        values = encrypted_citizen_values(
            cipher,
            citizen_id=citizen_id,
            name=name,
            id_number=number,
            id_number_index=cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, number),
            at=at,
        )
        citizens.append(tuple(values[column] for column in CITIZEN_COLUMNS))
        card_id = f"{index:032X}"  # real card ids are random 128-bit: never one of these
        cards.append(
            (
                card_id,
                f"Z{index:08d}",  # real card numbers start with "A"
                citizen_id,
                REGION,
                "active",
                "bench-filler",
                f"{index:x}",
                hashlib.sha256(index.to_bytes(8, "big")).hexdigest(),
                today,
                expires,
                at,
                at,
            )
        )
        # own_status and disclosures have Python-side defaults only: written here.
        ecard_id = _uuid_text(0xEC << 120 | index)
        ecards.append((ecard_id, card_id, citizen_id, f"_{index:015d}", "active", "[]", at, at))
    return citizens, cards, ecards


CITIZEN_COLUMNS = (
    "id",
    "name_ct",
    "id_number_ct",
    "id_number_index",
    "data_key_id",
    "status",
    "created_at",
    "updated_at",
)
CARD_COLUMNS = (
    "card_id",
    "card_number",
    "citizen_id",
    "region",
    "status",
    "issuer_kid",
    "certificate_serial",
    "certificate_fingerprint",
    "issued_on",
    "expires_on",
    "created_at",
    "updated_at",
)
ECARD_COLUMNS = (
    "id",
    "card_id",
    "citizen_id",
    "handle",
    "own_status",
    "disclosures",
    "created_at",
    "updated_at",
)
TABLES = (("citizens", CITIZEN_COLUMNS), ("cards", CARD_COLUMNS), ("wallet_ecards", ECARD_COLUMNS))


def _app(url: str, redis_url: str = "") -> Any:
    """The app on ``url``; with ``redis_url`` its short-lived store is Redis (as on a PostgreSQL deployment)
    instead of the SQL store in the same database."""
    from idp.app import create_app

    return create_app(
        env="test",
        database_url=url,
        redis_url=redis_url,
        redis_prefix="onecard-bench-scale",
        issuer="https://login.bench.example",
        plugins=[],
    )


def seed(
    url: str, count: int, *, measured: int = MEASURED, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Migrate and fill the database at ``url``; returns what ``measure`` needs (also kept in the table
    ``bench_scale``, updated after every 500 k rows: a seed stopped halfway leaves a database that can be
    measured at the size it reached)."""
    from idp.app import initialise_keys
    from idp.dbadmin import upgrade

    upgrade(url)
    app = _app(url)
    initialise_keys(app)
    svc = app.extensions["onecard"]
    now = svc.now()
    engine = svc.database.engine
    seeded = _seed_measured(app, measured)  # first: a stopped seed still has its real cards
    postgres = engine.dialect.name == "postgresql"
    started = time.perf_counter()
    done = 0
    raw = engine.raw_connection()
    starts = range(0, count, BATCH)
    # The rows are made (encrypted, blind-indexed) in worker processes while this one writes.
    workers = min(len(starts), max(1, (os.cpu_count() or 2) - 1))
    with mp.Pool(workers, initializer=_init_worker, initargs=(url,)) as pool:
        try:
            cursor = raw.cursor()
            cursor.execute("CREATE TABLE IF NOT EXISTS bench_scale (doc TEXT)")
            if postgres:
                # A bench load of rows consistent by construction: no per-row foreign-key triggers, and
                # no wait for the WAL flush at each commit (a crash loses the seed, which is rerun).
                cursor.execute("SET session_replication_role = replica")
                cursor.execute("SET synchronous_commit = off")
            jobs = ((start, min(BATCH, count - start), now) for start in starts)
            for citizens, cards, ecards in pool.imap(_rows_job, jobs):
                for (table, names), rows in zip(TABLES, (citizens, cards, ecards), strict=True):
                    _write(cursor, table, names, rows, postgres=postgres)
                done += len(citizens)
                if done % 500_000 == 0 or done == count:
                    seconds = time.perf_counter() - started
                    seeded.update({"n": done, "seed_seconds": round(seconds, 1)})
                    seeded["seed_citizens_per_s"] = round(done / seconds)
                    _keep(cursor, seeded, postgres=postgres)
                    log(f"  {done:,} citizens + cards + e-cards ({done / seconds:,.0f} citizens/s)")
                raw.commit()
        finally:
            raw.close()
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    svc.database.dispose()
    return seeded


def _keep(cursor: Any, seeded: dict[str, Any], *, postgres: bool) -> None:
    cursor.execute("DELETE FROM bench_scale")
    mark = "%s" if postgres else "?"
    cursor.execute(f"INSERT INTO bench_scale (doc) VALUES ({mark})", (json.dumps(seeded),))  # noqa: S608


_worker_cipher: Any = None


def _init_worker(url: str) -> None:
    global _worker_cipher
    app = _app(url)
    _worker_cipher = app.extensions["onecard"].pii_cipher()
    app.extensions["onecard"].database.dispose()


def _rows_job(job: tuple[int, int, float]) -> tuple[list[tuple[Any, ...]], ...]:
    start, count, now = job
    return _rows(_worker_cipher, start, count, dt.datetime.fromtimestamp(now, dt.UTC))


def _write(
    cursor: Any, table: str, names: tuple[str, ...], rows: list[tuple[Any, ...]], *, postgres: bool
) -> None:
    columns = ", ".join(names)
    if postgres:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in names)
    cursor.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - our own table and column names
        [_sqlite_row(row) for row in rows],
    )


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # SQLAlchemy's SQLite types store UTC datetimes and dates as text; the raw cursor must write the same.
    return tuple(
        value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, dt.datetime)
        else value.isoformat()
        if isinstance(value, dt.date)
        else value
        for value in row
    )


def _seed_measured(app: Any, measured: int) -> dict[str, Any]:
    from idp.cards.issuance import issue_card
    from idp.citizens.idnumber import check_character
    from idp.citizens.service import create_citizen
    from sdk.card_file import dump_card_file
    from wallet.ecards.service import activate_ecard
    from wallet.venues.service import VenueRegistration, create_venue

    svc = app.extensions["onecard"]
    now = svc.now()
    cards, citizens = [], []
    with svc.database.session() as session:
        for index in range(measured):
            first17 = f"110105{dt.date(1950, 1, 1) + dt.timedelta(days=index):%Y%m%d}{index % 1000:03d}"
            citizen = create_citizen(
                session, svc.pii_cipher(), f"测试{index}", first17 + check_character(first17), now=now
            )
            issued = issue_card(
                session,
                svc.keks,
                citizen_id=citizen.id,
                actor="bench",
                now=now,
                pin=PIN,
                pii=svc.pii_cipher(),
            )
            activate_ecard(session, citizen_id=citizen.id, card_id=issued.card.card_id, now=now)
            cards.append(dump_card_file(issued.card_file).decode())
            citizens.append(citizen.id)
        venue = create_venue(
            session, VenueRegistration("Bench museum", "museum", ("valid_resident",)), actor="bench", now=now
        )
    return {"cards": cards, "citizens": citizens, "venue_id": venue.venue.id}


def _seeded(url: str) -> dict[str, Any]:
    from idp.db import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        doc = connection.execute(text("SELECT doc FROM bench_scale")).scalar_one()
    engine.dispose()
    return dict(json.loads(doc))


@dataclass
class Timings:
    card_login: list[float]
    realname: list[float]
    gate: list[float]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure_one(url: str, *, rounds: int, redis_url: str = "") -> tuple[dict[str, Any], Timings]:
    """Time the three operations ``rounds`` times each on the database at ``url``."""
    from idp.cardlogin.challenge import authenticate_card, issue_challenge, origin_of
    from idp.presented_codes import use_once
    from idp.realname.service import RealnameQuery, verify_realname
    from sdk.card_file import parse_card_file
    from tests.support.cardlogin import VirtualCard
    from wallet.ecards.service import get_current_ecard
    from wallet.qr.service import issue_ecard_code
    from wallet.scans.admission import GATE_CTI_NAMESPACE
    from wallet.scans.service import decide_gate_code
    from wallet.venues.model import Venue

    seeded = _seeded(url)
    app = _app(url, redis_url)
    svc = app.extensions["onecard"]
    context = svc.card_login
    origin = origin_of(svc.settings.issuer)
    cards = [VirtualCard(parse_card_file(card.encode())) for card in seeded["cards"]]
    rng = random.Random(16)
    timings = Timings([], [], [])

    # Card login verify: the card signs first (bridge side, not timed), then the server's step 5.
    for round_ in range(rounds):
        card = cards[round_ % len(cards)]
        tx = f"bench-{round_}"
        challenge = issue_challenge(svc.store, transaction_id=tx, browser="b", now=svc.now())
        token = card.sign(origin, challenge.value, PIN)
        started = time.perf_counter()
        with svc.database.session() as session:
            authenticate_card(
                session,
                svc.store,
                context.limits,
                token=token,
                challenge_value=challenge.value,
                transaction_id=tx,
                browser="b",
                client_ip=f"10.0.{round_ % 250}.1",
                expected_origin=origin,
                certificates=context.certificates,
                now=svc.now(),
            )
        timings.card_login.append(time.perf_counter() - started)

    # Real-name verify by ID number, for citizens anywhere in the register.
    for _ in range(rounds):
        name, number = filler_identity(rng.randrange(seeded["n"]))
        started = time.perf_counter()
        with svc.database.session() as session:
            verdict = verify_realname(
                session,
                RealnameQuery(purpose="bench", name=name, id_number=number),
                cipher_factory=svc.pii_cipher,
                keyring=svc.keyring,
                store=svc.store,
                handle_resolver=None,
                now=svc.now(),
            )
        timings.realname.append(time.perf_counter() - started)
        assert verdict.result == "match", verdict

    # Gate verify: a fresh code per round (made before the clock starts), decided for the venue.
    with svc.database.session() as session:
        venue = session.get(Venue, seeded["venue_id"])
        views = [get_current_ecard(session, citizen_id) for citizen_id in seeded["citizens"]]
        codes = [
            issue_ecard_code(
                session, keyring=svc.keyring, cipher=None, view=views[i % len(views)], now=svc.now()
            ).text
            for i in range(rounds)
        ]
        session.expunge(venue)

    def use(token: Any) -> bool:
        return token is None or use_once(svc.store, GATE_CTI_NAMESPACE, token, now=svc.now())

    for code in codes:
        started = time.perf_counter()
        with svc.database.session() as session:
            decision = decide_gate_code(
                session,
                keyring=svc.keyring,
                cipher_factory=svc.pii_cipher,
                venue=venue,
                text=code,
                use_once=use,
                now=svc.now(),
            )
        timings.gate.append(time.perf_counter() - started)
        assert decision.reason is None, decision.reason
    svc.database.dispose()
    return seeded, timings


def measure(small: str, large: str, *, rounds: int, passes: int = 2, redis_url: str = "") -> dict[str, Any]:
    """Both databases, alternately ``passes`` times (the machine's load drifts: each sees the same drift)."""
    small_t, large_t = Timings([], [], []), Timings([], [], [])
    sizes: dict[str, int] = {}
    for _ in range(passes):
        for url, into in ((small, small_t), (large, large_t)):
            seeded, timings = measure_one(url, rounds=rounds, redis_url=redis_url)
            sizes[url] = seeded["n"]
            for name in LABELS:
                getattr(into, name).extend(getattr(timings, name))
    result: dict[str, Any] = {"small_n": sizes[small], "large_n": sizes[large], "rounds": rounds * passes}
    for name in LABELS:
        a, b = getattr(small_t, name), getattr(large_t, name)
        result[name] = {
            "small_p50_ms": round(statistics.median(a) * 1000, 3),
            "small_p99_ms": round(_percentile(a, 0.99), 3),
            "large_p50_ms": round(statistics.median(b) * 1000, 3),
            "large_p99_ms": round(_percentile(b, 0.99), 3),
            "ratio_p50": round(statistics.median(b) / statistics.median(a), 3),
        }
    result["load_average"] = os.getloadavg()[0]
    return result


LABELS = {
    "card_login": "card login verify",
    "realname": "real-name verify (blind index)",
    "gate": "gate verify (e-card by handle)",
}


def figures_of(result: dict[str, Any], backend: str) -> list[Figure]:
    rows = []
    for name, label in LABELS.items():
        part = result[name]
        ratio = part["ratio_p50"]
        rows.append(
            Figure(
                key=f"scale.{backend.lower().replace(' + ', '_')}.{name}",
                label=f"{label}, {result['large_n']:,} vs {result['small_n']:,} citizens, {backend}",
                value=part["large_p50_ms"],
                unit="ms p50",
                better="lower",
                peer=part["small_p50_ms"],
                target=f"<= {TARGET_RATIO} x",
                met=ratio <= TARGET_RATIO,
                note=f"p99 {part['large_p99_ms']} vs {part['small_p99_ms']} ms; {result['rounds']} rounds",
            )
        )
    return rows


def figures(quick: bool) -> list[Figure]:
    """On SQLite in a temporary directory: 10 k against ``BENCH_SCALE_N`` (default 100 k; 2 k against 10 k
    when quick).
    The 10 M PostgreSQL figures take a seeded database: ``BENCH_SCALE_SMALL_URL`` and
    ``BENCH_SCALE_LARGE_URL`` name two already seeded with ``seed``, and are measured instead when set
    (``BENCH_SCALE_REDIS_URL``: with the short-lived store in Redis, as deployed)."""
    small_url, large_url = os.environ.get("BENCH_SCALE_SMALL_URL"), os.environ.get("BENCH_SCALE_LARGE_URL")
    redis_url = os.environ.get("BENCH_SCALE_REDIS_URL", "")
    backend = "PostgreSQL + Redis" if redis_url else "PostgreSQL"
    if not (small_url and large_url):
        import tempfile

        backend = "SQLite"
        workdir = Path(tempfile.mkdtemp(prefix="onecard-scale-"))
        small_url, large_url = f"sqlite:///{workdir}/small.sqlite3", f"sqlite:///{workdir}/large.sqlite3"
        measured = 20 if quick else MEASURED
        seed(small_url, 2_000 if quick else 10_000, measured=measured, log=lambda _line: None)
        large = 10_000 if quick else int(os.environ.get("BENCH_SCALE_N", "100000"))
        seed(large_url, large, measured=measured, log=lambda _line: None)
        redis_url = ""
    result = measure(
        small_url, large_url, rounds=100 if quick else 1000, passes=1 if quick else 2, redis_url=redis_url
    )
    return figures_of(result, backend)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    seeding = commands.add_parser("seed", help="migrate and fill a database")
    seeding.add_argument("--url", required=True)
    seeding.add_argument("-n", type=int, required=True)
    measuring = commands.add_parser("measure", help="time the lookups on two seeded databases")
    measuring.add_argument("--small", required=True)
    measuring.add_argument("--large", required=True)
    measuring.add_argument("--rounds", type=int, default=1000)
    measuring.add_argument("--passes", type=int, default=2)
    measuring.add_argument("--redis-url", default="", help="the short-lived store in Redis, not SQL")
    args = parser.parse_args()
    if args.command == "seed":
        seeded = seed(args.url, args.n)
        print(json.dumps({k: v for k, v in seeded.items() if k not in ("cards", "citizens")}))
        return
    result = measure(args.small, args.large, rounds=args.rounds, passes=args.passes, redis_url=args.redis_url)
    backend = "PostgreSQL" if args.large.startswith("postgres") else "SQLite"
    if args.redis_url:
        backend += " + Redis"
    for figure in figures_of(result, backend):
        print(figure.row())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
