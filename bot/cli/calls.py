"""``callagent calls``: read call records from the terminal.

``callagent calls list [--since 7d] [--outcome escalated] [--intent X] [--transport twilio]
[--limit 20] [--offset 0] [--json]`` lists calls, newest first.

``callagent calls show ID [--json]`` prints one call turn by turn.

``callagent calls export --format csv|csv-calls|jsonl [--since ...] [--output FILE]``
streams every matching call (oldest first) with a progress bar on the terminal:
``jsonl`` is one call per line with its turns, ``csv`` one row per turn,
``csv-calls`` one row per call.

``callagent calls purge [--older-than 90d] [--anonymise | --delete] [--dry-run]`` deletes
(or anonymises: caller id, escalation summary, turn texts and entities cleared, statistics
kept) the calls started before then; without ``--older-than`` it applies
``CALLAGENT_RETENTION_DAYS`` (and ``CALLAGENT_RETENTION_ACTION``), as the server does daily.

``--since``/``--until``/``--older-than`` take a duration ago (``30m``, ``24h``, ``7d``),
a date or an ISO datetime (UTC).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from bot.settings import Settings
from integrations.storage import CallFilter, CallStore, parse_time
from integrations.storage.export import EXPORTERS
from integrations.storage.queries import OUTCOMES, iso
from integrations.storage.retention import RETENTION_ACTIONS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``calls list``, ``calls show``, ``calls export`` and ``calls purge``."""
    calls = subparsers.add_parser("calls", help="list, show, export and purge call records")
    commands = calls.add_subparsers(dest="calls_command", required=True)

    list_parser = commands.add_parser("list", help="calls, newest first")
    _add_filters(list_parser)
    list_parser.add_argument("--limit", type=int, default=20, help="calls per page (20)")
    list_parser.add_argument("--offset", type=int, default=0, help="skip this many calls")
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    list_parser.set_defaults(func=run_list)

    show = commands.add_parser("show", help="one call, turn by turn")
    show.add_argument("call_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    export = commands.add_parser("export", help="every matching call as CSV or JSON lines")
    _add_filters(export)
    export.add_argument(
        "--format",
        choices=sorted(EXPORTERS),
        required=True,
        help="jsonl: a call per line with turns; csv: a row per turn; csv-calls: a row per call",
    )
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=run_export)

    purge = commands.add_parser(
        "purge", help="delete or anonymise old calls (CALLAGENT_RETENTION_DAYS by default)"
    )
    purge.add_argument(
        "--older-than",
        help="calls started before this (90d, 12w, 2026-01-01); default CALLAGENT_RETENTION_DAYS",
    )
    what = purge.add_mutually_exclusive_group()
    what.add_argument(
        "--anonymise",
        dest="action",
        action="store_const",
        const="anonymise",
        help="clear caller id, summary, turn texts and entities; keep the statistics",
    )
    what.add_argument(
        "--delete", dest="action", action="store_const", const="delete", help="delete the calls"
    )
    purge.add_argument("--dry-run", action="store_true", help="only count what would change")
    purge.set_defaults(func=run_purge, action=None)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="calls started since (7d, 24h, 2026-11-01, ISO time)")
    parser.add_argument("--until", help="calls started before this")
    parser.add_argument("--outcome", choices=OUTCOMES)
    parser.add_argument("--intent", help="calls with a turn classified as this intent")
    parser.add_argument("--transport", choices=("twilio", "webrtc", "daily", "livekit"))


def _filter(args: argparse.Namespace) -> CallFilter:
    return CallFilter(
        since=_time_option("--since", args.since),
        until=_time_option("--until", args.until),
        outcome=args.outcome,
        intent=args.intent,
        transport=args.transport,
    )


def _time_option(option: str, value: str | None) -> datetime | None:
    """``parse_time`` for a command-line option; exits naming it when the value is bad."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise SystemExit(f"callagent calls: {option} {e}") from None


def quiet_logs() -> None:
    """Only warnings and errors on stderr (the command's own output is the point)."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _open() -> CallStore:
    from bot.call.records import open_store

    quiet_logs()
    return open_store(Settings.load())


def run_list(args: argparse.Namespace) -> int:
    """``callagent calls list``."""
    where = _filter(args)
    store = _open()
    try:
        page = store.list_calls(where, limit=args.limit, offset=args.offset)
    finally:
        store.close()
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    if not page["calls"]:
        print("no calls match")
        return 0
    print(
        f"{'call':<14} {'started (UTC)':<20} {'transport':<9} {'outcome':<11} "
        f"{'secs':>6} {'turns':>5}  {'intent':<22} end reason"
    )
    for c in page["calls"]:
        started = (c["started_at"] or "")[:19].replace("T", " ")
        secs = "" if c["duration_secs"] is None else f"{c['duration_secs']:.1f}"
        print(
            f"{c['id']:<14} {started:<20} {c['transport']:<9} {c['outcome']:<11} "
            f"{secs:>6} {c['turn_count']:>5}  {(c['primary_intent'] or '-'):<22} "
            f"{c['end_reason'] or ''}"
        )
    shown_to = page["offset"] + len(page["calls"])
    print(f"{page['offset'] + 1}-{shown_to} of {page['total']} calls")
    if shown_to < page["total"]:
        print(f"next page: --offset {shown_to}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """``callagent calls show ID``."""
    store = _open()
    try:
        call = store.get_call(args.call_id)
    finally:
        store.close()
    if call is None:
        print(f"no call {args.call_id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(call, indent=2, ensure_ascii=False))
        return 0
    print_call(call)
    return 0


def print_call(call: dict[str, Any]) -> None:
    """Print one call for a person."""
    print(f"call {call['id']}  {call['outcome']}  ({call['end_reason'] or 'no end reason'})")
    print(
        f"  started {call['started_at']}  duration {call['duration_secs']} s  "
        f"{call['transport']} {call['direction']}  caller {call['caller'] or '-'}"
    )
    if call["crm_prefetch_ms"] is not None:
        print(f"  CRM prefetch {call['crm_prefetch_ms']:.0f} ms")
    escalation = call.get("escalation")
    if escalation:
        print(
            f"  escalated: {escalation['trigger'] or '-'} / {escalation['reason'] or '-'}  "
            f"transfer {escalation['transfer_result'] or '-'}"
        )
        for key, value in (escalation.get("summary") or {}).items():
            print(f"    {key}: {value}")
    for t in call["turns"]:
        flags = " [interrupted]" if t["interrupted"] else ""
        print(f"\n  #{t['seq']} {t['kind']}{flags}")
        if t["caller_text"] is not None:
            print(f"    caller: {t['caller_text']}")
        if t["intent"]:
            conf = "" if t["confidence"] is None else f" {t['confidence']:.2f}"
            runner = f" (runner-up {t['runner_up']})" if t["runner_up"] else ""
            print(
                f"    nlu:    {t['intent']}{conf} {t['band'] or ''} via {t['path'] or '-'}{runner}"
            )
            if t["entities"]:
                print(f"    entities: {json.dumps(t['entities'], ensure_ascii=False)}")
        if t["bot_text"]:
            print(f"    bot:    {t['bot_text']}")
        if t["latency_ms"] is not None:
            stages = ", ".join(f"{k} {v:.0f}" for k, v in t["stages_ms"].items() if v)
            print(f"    latency {t['latency_ms']:.0f} ms ({stages})")


def run_export(args: argparse.Namespace) -> int:
    """``callagent calls export``."""
    from tqdm import tqdm

    where = _filter(args)
    store = _open()
    exporter = EXPORTERS[args.format]()
    try:
        total = store.count_calls(where)
        target = (
            args.output.open("w", encoding="utf-8", newline="")
            if args.output
            else nullcontext(sys.stdout)
        )
        with (
            target as out,
            tqdm(total=total, unit="call", file=sys.stderr, disable=None, desc="export") as bar,
        ):
            written = exporter.write(store.iter_calls(where), out, lambda: bar.update(1))
    finally:
        store.close()
    where_to = args.output or "stdout"
    print(f"exported {written} calls to {where_to} ({args.format})", file=sys.stderr)
    return 0


def run_purge(args: argparse.Namespace) -> int:
    """``callagent calls purge``."""
    from datetime import timedelta

    from integrations.storage.records import utcnow

    settings = Settings.load()
    action = args.action or settings.retention_action
    if args.older_than:
        try:
            cutoff = parse_time(args.older_than)
        except ValueError as e:
            print(f"callagent calls purge: --older-than {e}", file=sys.stderr)
            return 2
    elif settings.retention_days > 0:
        cutoff = utcnow() - timedelta(days=settings.retention_days)
    else:
        print(
            "callagent calls purge: give --older-than (e.g. 90d) or set CALLAGENT_RETENTION_DAYS",
            file=sys.stderr,
        )
        return 2
    store = _open()
    try:
        result = store.purge(cutoff, action, dry_run=args.dry_run)
    finally:
        store.close()
    done = RETENTION_ACTIONS[action].done
    verb = f"would be {done}" if result.dry_run else done
    before = iso(cutoff.replace(microsecond=0))
    print(f"{result.calls} calls and {result.turns} turns started before {before} {verb}")
    return 0
