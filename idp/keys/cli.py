"""``onecard keys``: the key lifecycle from the command line (DESIGN.md §7, docs/runbook.md).

    onecard keys list [--set oidc-rs256] [--all]     published keys (--all: removed and revoked too)
    onecard keys show KID
    onecard keys policy                              the derived waiting periods of every key set
    onecard keys rotate SET [--reason …]             a new pending key (published, not signing yet);
                                                     refused while SET already has a pending key
    onecard keys activate KID [--force] [--reason …] pending → active; the old active key retires
    onecard keys retire KID [--force] [--reason …]   active → retired without a successor (rare)
    onecard keys remove KID [--force] [--reason …]   retired → removed once its retention is over
    onecard keys revoke KID --reason … [--yes]       withdraw a compromised key at once (--yes: no prompt,
                                                     required without a terminal)
    onecard keys tick [--reason …]                   advance every set by its schedule (cron)
    onecard keys rewrap [--reason …]                 re-wrap every stored key under the first KEK
    onecard keys reencrypt [--reason …]              re-encrypt citizen PII under the active data key

Every change is an audit event with the actor ``cli:<os user>`` and the ``--reason`` (one option, the same
``KeyActor.reason`` the admin API sets, recorded by ``idp.keys.lifecycle.record_key_event``). Registered on
the ``onecard`` group by ``idp.cli``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from idp.cli_support import cli_actor, echo_fields, echo_json, fail, open_app
from idp.keys.lifecycle import (
    KeyActor,
    KeyChange,
    activate,
    describe_key,
    describe_policy,
    list_described,
    reencrypt_pii,
    remove,
    retire,
    revoke,
    rewrap_all,
    rotate,
)
from idp.keys.schedule import run_tick
from idp.keys.service import count_needing_rewrap, get_key, key_set_names
from idp.services import Services

FC = TypeVar("FC", bound=Callable[..., Any])


def _open() -> Services:
    _app, svc = open_app(keys=True)
    return svc


def _who(svc: Services, reason: str = "") -> KeyActor:
    from idp.keys.views import key_actor

    return key_actor(svc, cli_actor(), reason)


def _report(changes: list[KeyChange], *, quiet: bool = False) -> None:
    if not changes and not quiet:
        click.echo("nothing to do")
    for change in changes:
        click.echo(change.describe())


def reason_option(*, required: bool = False) -> Callable[[FC], FC]:
    """``--reason``, the same on every key-changing command; ``KeyActor`` validates it before any change."""
    described = "Why (e.g. the change or incident number): recorded in the audit event"
    if required:
        return click.option("--reason", required=True, help=f"{described} (required).")
    return click.option("--reason", default="", help=f"{described}.")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def keys() -> None:
    """Signing, encryption and cookie keys: rotate, activate, retire, revoke (DESIGN.md §7)."""


# Key ids are base64url and may start with "-": let such an id be an argument, not an unknown option.
KID_ARGUMENT = {"ignore_unknown_options": True}


@keys.command("list")
@click.option("--set", "key_set", default=None, help="Only this key set (e.g. oidc-rs256, qr, data).")
@click.option("--all", "include_gone", is_flag=True, help="Include removed and revoked keys.")
@json_option
def keys_list(key_set: str | None, include_gone: bool, as_json: bool) -> None:
    """List keys, newest first within each set."""
    svc = _open()
    with svc.database.session() as session:
        described = list_described(session, _who(svc), key_set, now=svc.now(), include_gone=include_gone)
    if as_json:
        echo_json(described)
        return
    for item in described:
        step = item["next"]
        after = f"  {step['action']} from {step['not_before']}" if step and step["not_before"] else ""
        rows = f"  rows={item['rows']}" if "rows" in item else ""
        click.echo(
            f"{item['key_set']:<14} {item['kid']:<24} {item['alg']:<8} {item['state']:<8}{rows}{after}"
        )


@keys.command("show", context_settings=KID_ARGUMENT)
@click.argument("kid")
@json_option
def keys_show(kid: str, as_json: bool) -> None:
    """Show one key (never its secret)."""
    svc = _open()
    with svc.database.session() as session:
        described = describe_key(session, _who(svc), get_key(session, kid), now=svc.now())
    if as_json:
        echo_json(described)
        return
    described = {
        **described,
        "next": described["next"] and " ".join(f"{k}={v}" for k, v in described["next"].items()),
    }
    described.pop("public_jwk", None)
    echo_fields(described)


@keys.command("policy")
@json_option
def keys_policy(as_json: bool) -> None:
    """The waiting periods of every key set, and what they are derived from."""
    svc = _open()
    who = _who(svc)
    with svc.database.session() as session:
        policies = [describe_policy(who.policy(name)) for name in key_set_names(session)]
    if as_json:
        echo_json(policies)
        return
    for policy in policies:
        interval = policy["rotation_interval_seconds"]
        click.echo(
            f"{policy['key_set']:<14} pre-publication {policy['prepublication_seconds']:>6} s  "
            f"retention {policy['retention_seconds']:>9} s  "
            f"rotation {f'{interval // 86400} d' if interval else 'manual':>7}"
        )
        click.echo(f"{'':<14} {policy['derivation']}")


@keys.command("rotate")
@click.argument("key_set")
@reason_option()
def keys_rotate(key_set: str, reason: str) -> None:
    """Create a new pending key in KEY_SET: published now, signing once activated."""
    svc = _open()
    with svc.database.session() as session:
        change = rotate(session, _who(svc, reason), key_set, now=svc.now())
        policy = _who(svc).policy(key_set)
    _report([change])
    click.echo(
        f"It may be activated in {policy.prepublication} s (`onecard keys activate {change.kid}`, or the "
        "next `onecard keys tick` after that).",
        err=True,
    )


@keys.command("activate", context_settings=KID_ARGUMENT)
@click.argument("kid")
@click.option("--force", is_flag=True, help="Activate before the pre-publication period is over.")
@reason_option()
def keys_activate(kid: str, force: bool, reason: str) -> None:
    """Make a pending key the one that signs; the set's active key retires."""
    svc = _open()
    with svc.database.session() as session:
        changes = activate(session, _who(svc, reason), kid, now=svc.now(), force=force)
    _report(changes)
    if any(change.forced for change in changes):
        click.echo(
            "WARNING: activated before the pre-publication period ended. Relying parties and gates holding "
            "a cached key set without this key will refuse what it signs until they refetch (most do on an "
            "unknown kid). Use --force only in an emergency.",
            err=True,
        )


@keys.command("retire", context_settings=KID_ARGUMENT)
@click.argument("kid")
@click.option("--force", is_flag=True, help="Retire even the only active key of its set.")
@reason_option()
def keys_retire(kid: str, force: bool, reason: str) -> None:
    """Stop an active key from signing (normally `activate` of its successor does this)."""
    svc = _open()
    with svc.database.session() as session:
        change = retire(session, _who(svc, reason), kid, now=svc.now(), force=force)
    _report([change])


@keys.command("remove", context_settings=KID_ARGUMENT)
@click.argument("kid")
@click.option("--force", is_flag=True, help="Remove before the retention period is over.")
@reason_option()
def keys_remove(kid: str, force: bool, reason: str) -> None:
    """Unpublish a retired key (or drop an unused pending one); its secret is destroyed."""
    svc = _open()
    with svc.database.session() as session:
        change = remove(session, _who(svc, reason), kid, now=svc.now(), force=force)
    _report([change])


@keys.command("revoke", context_settings=KID_ARGUMENT)
@click.argument("kid")
@reason_option(required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
def keys_revoke(kid: str, reason: str, yes: bool) -> None:
    """Withdraw a compromised key at once; what it signed is refused from now on."""
    if not yes:
        if not sys.stdin.isatty():
            # No one to ask (cron, a script, CI): say how to confirm instead of failing with "Aborted!".
            raise click.ClickException(
                f"revoking {kid} needs confirmation and there is no terminal to ask on; "
                "run it again with --yes to confirm"
            )
        click.confirm(f"Revoke {kid}? Everything it signed stops being accepted", abort=True)
    svc = _open()
    with svc.database.session() as session:
        changes = revoke(session, _who(svc, reason), kid, now=svc.now())
    _report(changes)
    click.echo(
        f"Every node drops the key within {svc.keyring.cache_seconds:.0f} s; relying parties at their next "
        f"JWKS fetch (max-age {svc.settings.jwks_max_age} s), gates at their next key-set sync.",
        err=True,
    )


@keys.command("tick")
@click.option("--quiet", is_flag=True, help="Print only the changes (for cron).")
@reason_option()
def keys_tick(quiet: bool, reason: str) -> None:
    """Advance every key set by its schedule (run it from cron, e.g. every 5 minutes)."""
    svc = _open()
    _report(run_tick(svc, _who(svc, reason or "scheduled")), quiet=quiet)


@keys.command("rewrap")
@reason_option()
def keys_rewrap(reason: str) -> None:
    """Re-wrap every stored key under the first key-encryption key (safe to run again)."""
    svc = _open()
    with svc.database.session() as session:
        count = rewrap_all(session, _who(svc, reason), now=svc.now())
    with svc.database.session() as session:
        left = count_needing_rewrap(session, svc.keks)
    click.echo(
        f"re-wrapped {count} key(s) under KEK {svc.keks.current_id.hex()}; {left} left under older KEKs"
    )


@keys.command("reencrypt")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reason_option()
def keys_reencrypt(batch_size: int, quiet: bool, reason: str) -> None:
    """Re-encrypt citizen PII under the active data key, in batches; an interrupted run resumes."""
    from tqdm import tqdm

    svc = _open()
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = tqdm(total=total, unit=" rows", desc="reencrypt", file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        report = reencrypt_pii(
            svc.database,
            svc.keyring,
            _who(svc, reason),
            clock=svc.now,
            batch_size=batch_size,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"re-encrypted {report.reencrypted} row(s) under {report.data_key}; {report.remaining} left")
    if not report.complete:
        fail("rows were written under another key meanwhile; run it again")
