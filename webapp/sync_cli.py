"""`flask --app wsgi sync …`: poll, backfill, requeue, status (SPEC §14)."""

from __future__ import annotations

import json
import time
from datetime import date

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Backfill, Practice, SyncJob
from webapp.practices import PracticeError, find

sync_cli = AppGroup("sync", help="Run and inspect the sync.")


def _practice(slug: str) -> Practice:
    try:
        return find(slug)
    except PracticeError as exc:
        raise click.ClickException(str(exc)) from None


@sync_cli.command("poll")
@click.argument("slug", required=False)
def sync_poll(slug: str | None) -> None:
    """One discovery pass now (every enabled practice, or one)."""
    from webapp.clients.errors import ClientError
    from webapp.sync.discovery import poll

    practices = [_practice(slug)] if slug else db.session.scalars(
        select(Practice).where(Practice.sync_enabled.is_(True))).all()
    for practice in practices:
        try:
            counts = poll(practice.id)
        except ClientError as exc:
            raise click.ClickException(f"{practice.slug}: {exc.message}") from None
        click.echo(f"{practice.slug}: {counts.created} new, {counts.updated} changed, "
                   f"{counts.unchanged} unchanged, {counts.followups} follow-ups")


def drain(practice_id: int, timeout: float, worker: str = "cli") -> None:
    """Push in this process until nothing is due (or the timeout): the CLI acting as a worker."""
    from webapp.models import utcnow
    from webapp.sync.push import next_due, push

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = push(practice_id, worker, time_budget=min(30.0, max(deadline - time.monotonic(), 1)))
        if result.stopped and result.reschedule_at is None:
            raise click.ClickException(f"Push stopped: {result.stopped}")
        due = result.reschedule_at or next_due(practice_id)
        if due is None:
            return
        time.sleep(min(max((due - utcnow()).total_seconds(), 0.05), 5, max(deadline - time.monotonic(), 0)))


@sync_cli.command("backfill")
@click.argument("slug")
@click.option("--since", required=True, help="YYYY-MM-DD: invoices issued on or after this date.")
@click.option("--wait", is_flag=True, help="Discover and send in this process, then print the outcome.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
def sync_backfill(slug: str, since: str, wait: bool, timeout: float) -> None:
    """Synchronise from a previous date."""
    from webapp.sync import backfill as backfills

    practice = _practice(slug)
    try:
        since_date = date.fromisoformat(since)
    except ValueError:
        raise click.ClickException("--since must be a date like 2026-01-31.") from None
    try:
        row = backfills.start(practice, since_date, None)
    except backfills.BackfillError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backfill {row.id} of {practice.slug} from {since_date} queued.")
    if not wait:
        return
    backfills.run(row.id)
    drain(practice.id, timeout)
    db.session.expire_all()
    row = db.session.get(Backfill, row.id)
    p = backfills.progress(row)
    click.echo(json.dumps({"backfill": row.id, "state": row.state, "discovered": p.discovered, "synced": p.synced,
                           "failed": p.failed, "remaining": p.remaining, "skipped_or_ignored": p.other}))


@sync_cli.command("requeue")
@click.argument("slug")
@click.option("--state", "status", default="failed", type=click.Choice(["failed", "ignored"]), show_default=True)
@click.option("--category", help="Only rows with this error category (e.g. mapping).")
def sync_requeue(slug: str, status: str, category: str | None) -> None:
    """Send failed (or ignored) rows again."""
    from webapp.sync.requeue import matching, requeue

    practice = _practice(slug)
    count = requeue(matching([practice.id], status=status, category=category), None)
    click.echo(f"Re-queued {count} rows of {practice.slug}.")


@sync_cli.command("status")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sync_status(slug: str | None, as_json: bool) -> None:
    """Counts by kind and state."""
    query = select(Practice.slug, SyncJob.kind, SyncJob.status, func.count()).join(
        Practice, Practice.id == SyncJob.practice_id).group_by(Practice.slug, SyncJob.kind, SyncJob.status)
    if slug:
        query = query.where(Practice.id == _practice(slug).id)
    result: dict = {}
    for practice_slug, kind, status, count in db.session.execute(query):
        result.setdefault(practice_slug, {}).setdefault(kind, {})[status] = count
    if as_json:
        click.echo(json.dumps(result[slug] if slug and slug in result else ({} if slug else result), sort_keys=True))
        return
    for practice_slug, kinds in sorted(result.items()):
        click.echo(practice_slug)
        for kind, counts in sorted(kinds.items()):
            click.echo(f"  {kind:15} " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
