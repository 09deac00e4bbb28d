"""Two regions on one machine (``onecard demo run --regions 2``, issue 12 item 4; docs/federation.md
"Trying it: two regions on one machine"): a trust anchor OneCard and two regional OneCards under it, the
federation set up the way docs/federation.md §2 tells staff to, by the ``onecard`` command of each deployment:

1. every database migrated; the anchor's federation keys (``onecard federation jwks``) written to the trust
   anchors file both regions read;
2. each region's federation keys handed to the anchor, which registers it (``onecard federation add …
   --trust-mark-type <loa:high> --replace``) and issues it the loa:high trust mark (``onecard federation
   issue-trust-mark``), written to the region's trust marks file before the region starts;
3. each region seeded by its own CLI: a citizen (``onecard citizens add``), a card of the region's code
   (``onecard cards issue --region``), a portal client (``onecard clients add``) and, at region A, a venue
   (``onecard venues add``); what they print is kept in the region's ``credentials.json``.

Region A is Chengdu (510100), region B Chongqing (500000). The directory refresh and the chain cache are short
(``DEMO_FEDERATION_SETTINGS``), so a change at the anchor shows within half a minute.

The same functions set up the real-process tests (``tests/support/regions_processes.py``), which only pick
other ports, databases and settings: ``plan_regions`` says where everything is, ``set_up_federation`` and
``seed_region`` do the work through a ``OneCardCli``. Development and test only: the citizens, PIN and files
are published values.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from demo.data import DEMO_PIN
from demo.runner import Child, DemoError, DemoRun, Log, repository_root, supervise
from idp import dbadmin
from idp.citizens.idnumber import check_character

ANCHOR: Final = "anchor"
ANCHOR_ORGANIZATION: Final = "川渝信任锚（示例）"
LOA_HIGH_TRUST_MARK: Final = "https://onecard.example/trust-marks/loa-high"  # the Settings default
PORTAL_SCOPE: Final = "openid profile realname idcard offline_access"
# Short, so the demo shows a change at the anchor quickly (the defaults are 300 s and an hour).
DEMO_FEDERATION_SETTINGS: Final = {
    "ONECARD_FEDERATION_DIRECTORY_REFRESH_SECONDS": "30",
    "ONECARD_FEDERATION_CHAIN_CACHE_SECONDS": "30",
}
CLI_TIMEOUT: Final = 120.0


def _id_number(first17: str) -> str:
    return first17 + check_character(first17)


@dataclass(frozen=True)
class RegionSpec:
    """One regional OneCard's fixed demo data: invented citizens, real region codes."""

    key: str  # "a", "b": the directory and the name in logs
    label: str
    region_code: str  # GB/T 2260: the card-issuer region this OneCard is home for
    organization_name: str
    citizen_name: str
    citizen_id_number: str
    venue_name: str


REGION_A: Final = RegionSpec(
    "a", "region A (Chengdu)", "510100", "成都市社会保障卡一卡通（示例）",
    "成小川", _id_number("51010419850612003"), "成都示例博物馆",
)  # fmt: skip
REGION_B: Final = RegionSpec(
    "b", "region B (Chongqing)", "500000", "重庆市社会保障卡一卡通（示例）",
    "渝小庆", _id_number("50010319920815004"), "重庆示例博物馆",
)  # fmt: skip
REGIONS: Final = (REGION_A, REGION_B)

# The demo's ports and host names. Region B answers as localhost, the anchor and region A as 127.0.0.1:
# browsers keep cookies per host, not per port, and the two regions' login cookies have the same names, so a
# citizen sent from A to B and back must not find A's cookies overwritten by B's. (localhost also lets B's
# wallet create passkeys: browsers refuse them on an IP address.)
DEMO_IDP_PORTS: Final = {ANCHOR: 8100, "a": 8101, "b": 8102}
DEMO_PORTAL_PORTS: Final = {"a": 8111, "b": 8112}
DEMO_BRIDGE_PORTS: Final = {"a": 47400, "b": 47401}
DEMO_HOSTS: Final = {ANCHOR: "127.0.0.1", "a": "127.0.0.1", "b": "localhost"}


@dataclass(frozen=True)
class Deployment:
    """One OneCard of the set-up: its entity id (= issuer), port, directory and ``ONECARD_*`` settings."""

    key: str
    entity_id: str
    port: int
    directory: Path
    settings: Mapping[str, str]
    region: RegionSpec | None = None

    @property
    def label(self) -> str:
        return self.region.label if self.region else "trust anchor"

    @property
    def spec(self) -> RegionSpec:
        assert self.region is not None, "the trust anchor is no region"
        return self.region

    @property
    def database_url(self) -> str:
        return self.settings["ONECARD_DATABASE_URL"]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` without any ``ONECARD_*`` of its own (one deployment's must not leak into another's), and
        this deployment's settings."""
        return {**{k: v for k, v in base.items() if not k.startswith("ONECARD_")}, **self.settings}

    @property
    def jwks_file(self) -> Path:
        """Its public federation keys, as handed to its superior."""
        return self.directory / "federation.jwks.json"

    @property
    def trust_marks_file(self) -> Path:
        return self.directory / "trust-marks.json"

    @property
    def card_file(self) -> Path:
        return self.directory / "card.json"

    @property
    def credentials_file(self) -> Path:
        return self.directory / "credentials.json"

    def log_file(self, name: str) -> Path:
        return self.directory / f"{name}.log"


@dataclass(frozen=True)
class RegionsLayout:
    directory: Path
    anchor: Deployment
    regions: tuple[Deployment, ...]

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return (self.anchor, *self.regions)

    @property
    def trust_anchors_file(self) -> Path:
        return self.directory / "trust-anchors.json"

    def region(self, key: str) -> Deployment:
        return next(region for region in self.regions if region.key == key)


def plan_regions(
    directory: Path,
    *,
    ports: Mapping[str, int],
    hosts: Mapping[str, str] | None = None,
    database_urls: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
    per_deployment: Mapping[str, Mapping[str, str]] | None = None,
    env_name: str = "development",
) -> RegionsLayout:
    """Where the anchor (key ``anchor``) and regions ``a`` and ``b`` run. ``ports`` and ``hosts`` by key
    (hosts default to 127.0.0.1); ``database_urls`` by key (default: a SQLite file in each deployment's
    directory); ``settings`` are ``ONECARD_*`` for all three, ``per_deployment`` by key on top of them."""
    directory = directory.resolve()
    anchor_id = f"http://{(hosts or {}).get(ANCHOR, '127.0.0.1')}:{ports[ANCHOR]}"
    anchors_file = directory / "trust-anchors.json"

    def deployment(key: str, region: RegionSpec | None) -> Deployment:
        home = directory / key
        entity_id = f"http://{(hosts or {}).get(key, '127.0.0.1')}:{ports[key]}"
        values = {
            "ONECARD_ENV": env_name,
            "ONECARD_ISSUER": entity_id,
            "ONECARD_DATABASE_URL": (database_urls or {}).get(key) or f"sqlite:///{home / 'onecard.sqlite3'}",
            **DEMO_FEDERATION_SETTINGS,
            **(settings or {}),
        }
        if region is None:
            values.update(
                ONECARD_FEDERATION_ROLES="anchor", ONECARD_FEDERATION_ORGANIZATION_NAME=ANCHOR_ORGANIZATION
            )
        else:
            values.update(
                ONECARD_FEDERATION_ROLES="leaf",
                ONECARD_FEDERATION_ORGANIZATION_NAME=region.organization_name,
                ONECARD_FEDERATION_AUTHORITY_HINTS=anchor_id,
                ONECARD_FEDERATION_TRUST_ANCHORS_FILE=str(anchors_file),
                ONECARD_FEDERATION_TRUST_MARKS_FILE=str(home / "trust-marks.json"),
                ONECARD_FEDERATION_REGION_CODES=region.region_code,
            )
        values.update((per_deployment or {}).get(key, {}))
        return Deployment(key, entity_id, ports[key], home, values, region)

    return RegionsLayout(
        directory,
        deployment(ANCHOR, None),
        tuple(deployment(region.key, region) for region in REGIONS),
    )


# Running the onecard command ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OneCardCli:
    """``onecard …`` as one deployment's operator runs it: this interpreter, that deployment's settings."""

    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    timeout: float = CLI_TIMEOUT

    def run(self, deployment: Deployment, *args: str, input: str | None = None) -> str:
        """Its standard output; ``DemoError`` with its last error line when it fails."""
        result = subprocess.run(  # noqa: S603 - our own interpreter and arguments we built
            [sys.executable, "-c", "from idp.cli import main; main()", *args],
            env=deployment.env(self.base_env),
            cwd=self.cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
            raise DemoError(f"onecard {' '.join(args[:2])} at the {deployment.label} failed: {lines[-1]}")
        return result.stdout


# The federation ----------------------------------------------------------------------------------------


def migrate(layout: RegionsLayout) -> None:
    """Every database at the head revision (what ``onecard serve`` would do at its start)."""
    for deployment in layout.deployments:
        deployment.directory.mkdir(parents=True, exist_ok=True)
        dbadmin.upgrade(deployment.database_url)


def trust_mark_type(deployment: Deployment) -> str:
    return deployment.settings.get("ONECARD_FEDERATION_LOA_HIGH_TRUST_MARK", LOA_HIGH_TRUST_MARK)


def write_federation_keys(cli: OneCardCli, deployment: Deployment) -> dict[str, Any]:
    """``onecard federation jwks`` of ``deployment``, kept in its ``jwks_file``; returns the JWK Set."""
    jwks: dict[str, Any] = json.loads(cli.run(deployment, "federation", "jwks"))
    deployment.jwks_file.write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    return jwks


def register_region(cli: OneCardCli, layout: RegionsLayout, region: Deployment) -> None:
    """The anchor registers ``region`` with the keys in its ``jwks_file`` (new or replacing the registration:
    the same options every time, so a key rotation's re-registration keeps the trust mark type)."""
    cli.run(
        layout.anchor, "federation", "add", region.entity_id, "--jwks", str(region.jwks_file),
        "--max-path-length", "0", "--trust-mark-type", trust_mark_type(region), "--replace",
    )  # fmt: skip


def issue_trust_mark(cli: OneCardCli, layout: RegionsLayout, region: Deployment) -> None:
    """The anchor issues ``region`` its loa:high trust mark, written to the region's trust marks file (read
    when the region starts)."""
    mark = cli.run(layout.anchor, "federation", "issue-trust-mark", region.entity_id).strip()
    region.trust_marks_file.write_text(json.dumps([mark]) + "\n", encoding="utf-8")


def refresh_region_keys(cli: OneCardCli, layout: RegionsLayout, region: Deployment) -> dict[str, Any]:
    """After ``onecard keys rotate federation`` at ``region``: its keys (old and new) to the anchor again."""
    jwks = write_federation_keys(cli, region)
    register_region(cli, layout, region)
    return jwks


def set_up_federation(cli: OneCardCli, layout: RegionsLayout, *, log: Log | None = None) -> None:
    """Steps 1 and 2 of the module docstring. Safe to repeat: registrations are replaced, marks re-issued."""
    say = log or (lambda _line: None)
    migrate(layout)
    anchor_jwks = write_federation_keys(cli, layout.anchor)
    layout.trust_anchors_file.write_text(
        json.dumps({layout.anchor.entity_id: anchor_jwks}, indent=2) + "\n", encoding="utf-8"
    )
    say(f"trust anchor {layout.anchor.entity_id}: its keys in {layout.trust_anchors_file}")
    for region in layout.regions:
        if not region.trust_marks_file.exists():
            region.trust_marks_file.write_text("[]\n", encoding="utf-8")  # read at start-up: must exist
        write_federation_keys(cli, region)
        register_region(cli, layout, region)
        issue_trust_mark(cli, layout, region)
        say(f"{region.label} {region.entity_id}: registered at the anchor, loa:high trust mark issued")


# Each region's citizen, card, portal and venue ---------------------------------------------------------


@dataclass(frozen=True)
class RegionCredentials:
    """What a region's seeding created, for the demo's banner and the tests' drivers."""

    entity_id: str
    region_code: str
    citizen_id: str
    card_id: str
    card_file: str
    card_pin: str
    portal_client_id: str
    portal_client_secret: str
    portal_redirect_uri: str
    venue_id: str | None = None
    venue_client_id: str | None = None
    venue_client_secret: str | None = None

    def save(self, path: Path) -> None:
        """0600: it holds the portal's and the venue's secrets."""
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> RegionCredentials:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _found(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise DemoError(f"could not read the {what} from the onecard command's output")
    return match.group(1)


def seed_region(
    cli: OneCardCli, region: Deployment, *, portal_url: str, venue: bool = False
) -> RegionCredentials:
    """The region's demo citizen with a card of the region's code (PIN ``DEMO_PIN``), a portal client whose
    URIs are under ``portal_url``, and (``venue``) a venue; kept in its ``credentials_file``."""
    spec = region.spec
    added = cli.run(
        region, "citizens", "add", "--name", spec.citizen_name, "--id-number", spec.citizen_id_number
    )
    citizen_id = _found(r"registered citizen (\S+)", added, "citizen id")
    issued = cli.run(
        region, "cards", "issue", "--citizen", citizen_id, "--out", str(region.card_file),
        "--pin", DEMO_PIN, "--region", spec.region_code, "--force",
    )  # fmt: skip
    card_id = _found(r"issued card (\S+)", issued, "card id")
    portal_command = [
        "clients", "add", "--name", f"{spec.organization_name}示例门户", "--kind", "portal",
        "--redirect-uri", f"{portal_url}/callback", "--post-logout-redirect-uri", f"{portal_url}/",
        "--backchannel-logout-uri", f"{portal_url}/backchannel-logout", "--scope", PORTAL_SCOPE,
        "--id-number-allowed", "--json",
    ]  # fmt: skip
    portal = json.loads(cli.run(region, *portal_command))
    venue_fields: dict[str, str | None] = {}
    if venue:
        venue_command = [
            "venues", "add", "--name", spec.venue_name, "--category", "museum",
            "--claim", "valid_resident", "--json",
        ]  # fmt: skip
        created = json.loads(cli.run(region, *venue_command))
        venue_fields = {
            "venue_id": created["venue_id"],
            "venue_client_id": created.get("client_id") or created["venue_id"],
            "venue_client_secret": created["client_secret"],
        }
    credentials = RegionCredentials(
        entity_id=region.entity_id,
        region_code=spec.region_code,
        citizen_id=citizen_id,
        card_id=card_id,
        card_file=str(region.card_file),
        card_pin=DEMO_PIN,
        portal_client_id=portal["client_id"],
        portal_client_secret=portal["client_secret"],
        portal_redirect_uri=f"{portal_url}/callback",
        **venue_fields,
    )
    credentials.save(region.credentials_file)
    return credentials


# The demo itself ---------------------------------------------------------------------------------------


def demo_layout(directory: Path) -> RegionsLayout:
    """The layout of ``onecard demo run --regions 2``: under ``<dir>/regions``, the demo's ports and hosts,
    each region's IdP pointed at its own reader bridge."""
    return plan_regions(
        directory / "regions",
        ports=DEMO_IDP_PORTS,
        hosts=DEMO_HOSTS,
        per_deployment={key: {"ONECARD_CARD_BRIDGE_URL": bridge_url(key)} for key in DEMO_BRIDGE_PORTS},
    )


def bridge_url(key: str) -> str:
    return f"http://127.0.0.1:{DEMO_BRIDGE_PORTS[key]}"


def portal_url(region: Deployment) -> str:
    return f"http://127.0.0.1:{DEMO_PORTAL_PORTS[region.key]}"


def prepare_demo(cli: OneCardCli, layout: RegionsLayout, *, log: Log) -> dict[str, RegionCredentials]:
    """The federation (every start: keys re-registered, marks re-issued) and, once, each region's data."""
    fresh = {r.key: not Path(r.database_url.removeprefix("sqlite:///")).exists() for r in layout.regions}
    set_up_federation(cli, layout, log=log)
    seeded = {}
    for region in layout.regions:
        if not fresh[region.key] and region.credentials_file.exists():
            seeded[region.key] = RegionCredentials.load(region.credentials_file)
            log(f"{region.label}: its citizen, card and portal exist ({region.credentials_file})")
            continue
        if not fresh[region.key]:
            raise DemoError(
                f"{region.credentials_file} is missing but {region.label}'s database exists; "
                f"delete {layout.directory} to start the two-region demo afresh"
            )
        seeded[region.key] = seed_region(cli, region, portal_url=portal_url(region), venue=region.key == "a")
        log(f"{region.label}: citizen, card ({region.card_file}) and portal client created")
    return seeded


def plan_demo_children(
    layout: RegionsLayout, seeded: Mapping[str, RegionCredentials], base_env: Mapping[str, str],
    *, open_pin_dialog: bool,
) -> list[Child]:  # fmt: skip
    """Each OneCard (``python -m demo.runner``, as the one-region demo runs its IdP), then per region its
    reader bridge with its citizen's card and its example portal."""
    root = repository_root()
    children = []
    for deployment in layout.deployments:
        bridge = deployment.settings.get("ONECARD_CARD_BRIDGE_URL", "http://127.0.0.1:47400")
        command = [
            sys.executable, "-m", "demo.runner", "--port", str(deployment.port),
            "--issuer", deployment.entity_id, "--bridge-url", bridge,
        ]  # fmt: skip
        children.append(
            Child(deployment.key if deployment.key == ANCHOR else f"idp-{deployment.key}", command,
                  deployment.port, deployment.log_file("idp"), deployment.env(base_env))
        )  # fmt: skip
    for region in layout.regions:
        bridge_command = [
            sys.executable, "-m", "reader_bridge.cli", "serve", "--dev",
            "--virtual-card", str(region.card_file), "--pin-source", "dialog",
            "--port", str(DEMO_BRIDGE_PORTS[region.key]), "--origin", region.entity_id,
        ]  # fmt: skip
        if not open_pin_dialog:
            bridge_command.append("--no-open-dialog")
        env = region.env(base_env)
        children.append(
            Child(f"bridge-{region.key}", bridge_command, DEMO_BRIDGE_PORTS[region.key],
                  region.log_file("bridge"), env)
        )  # fmt: skip
        portal_env = {
            **env,
            "ONECARD_ISSUER": region.entity_id,
            "PORTAL_BASE_URL": portal_url(region),
            "PORTAL_CLIENT_ID": seeded[region.key].portal_client_id,
            "PORTAL_CLIENT_SECRET": seeded[region.key].portal_client_secret,
            "PORTAL_NAME": f"{region.spec.organization_name}示例门户",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")])),
        }
        children.append(
            Child(f"portal-{region.key}", [sys.executable, "-m", "examples.portal"],
                  DEMO_PORTAL_PORTS[region.key], region.log_file("portal"), portal_env)
        )  # fmt: skip
    return children


def banner(layout: RegionsLayout, children: Sequence[Child], seeded: Mapping[str, RegionCredentials]) -> str:
    anchor = layout.anchor.entity_id
    lines = [
        "",
        "OneCard two-region demo is running (Ctrl-C stops it):",
        "",
        *[f"  {child.name:<9} pid {child.pid:<7} log {child.log_path}" for child in children],
        "",
        f"  {'trust anchor':<21} {anchor}   (/.well-known/openid-federation, /federation/list)",
    ]
    for region in layout.regions:
        spec = region.spec
        bridge = f"127.0.0.1:{DEMO_BRIDGE_PORTS[region.key]}"
        lines += [
            f"  {spec.label:<21} {region.entity_id}   home of the cards of region {spec.region_code}",
            f'    its portal {portal_url(region)}: "Log in with card", PIN {DEMO_PIN}; the card of its '
            f"citizen {seeded[region.key].citizen_id} is in the bridge on {bridge}",
        ]
    region_b = layout.region("b").entity_id
    lines += [
        "",
        f"  Region B's chain as the anchor resolves it:  {anchor}/federation/resolve?sub={region_b}"
        f"&trust_anchor={anchor}",
        "  The regions each OneCard trusts now, by its own command and settings, e.g. region A's:",
        f"    (set -a; . {layout.directory}/a/settings.env; onecard federation regions)",
        "  Revoke region B at the anchor:",
        f"    (set -a; . {layout.directory}/anchor/settings.env; onecard federation remove {region_b})",
        "  (region A stops trusting it within 30 s: its directory refresh and chain cache).",
        f"  Credentials (portal clients, region A's venue): {layout.directory}/*/credentials.json",
        "",
        "  The demo cards, PIN and secrets are development values: never use them outside a laptop.",
        "",
    ]
    return "\n".join(lines)


def write_settings_files(layout: RegionsLayout) -> None:
    """Each deployment's settings as ``settings.env`` (KEY=value lines), for running its ``onecard`` commands
    by hand while the demo runs."""
    for deployment in layout.deployments:
        text = "".join(f"{name}={value}\n" for name, value in deployment.settings.items())
        (deployment.directory / "settings.env").write_text(
            f"# {deployment.label}: its ONECARD_* settings in the two-region demo\n" + text, encoding="utf-8"
        )


def run_demo(directory: Path, *, open_pin_dialog: bool, echo: Log) -> int:
    """``onecard demo run --regions 2``: set up, start every child, print the banner, wait for Ctrl-C or
    SIGTERM (or a child's end), stop every child by its PID."""
    layout = demo_layout(directory)
    base_env = dict(os.environ)
    cli = OneCardCli(base_env)
    seeded = prepare_demo(cli, layout, log=lambda line: echo(f"  {line}"))
    write_settings_files(layout)
    demo = DemoRun(plan_demo_children(layout, seeded, base_env, open_pin_dialog=open_pin_dialog))
    return supervise(demo, lambda children: banner(layout, children, seeded), echo=echo)
