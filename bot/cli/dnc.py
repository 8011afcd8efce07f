"""``callagent dnc``: the do-not-call list (numbers no campaign or call ever dials).

``callagent dnc add NUMBER``, ``callagent dnc remove NUMBER``, ``callagent dnc import FILE``
(one number a line, or a CSV with a ``phone`` column; bad lines named), and
``callagent dnc list [--limit 100] [--offset 0] [--json]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from bot.cli.calls import quiet_logs
from bot.settings import Settings
from integrations.outbound.store import OutboundStore, OutboundStoreError
from integrations.storage import CallStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``dnc add|remove|import|list``."""
    dnc = subparsers.add_parser("dnc", help="the do-not-call list")
    commands = dnc.add_subparsers(dest="dnc_command", required=True)
    add = commands.add_parser("add", help="never call this number")
    add.add_argument("number", metavar="NUMBER")
    add.set_defaults(func=run_add)
    remove = commands.add_parser("remove", help="take a number off the list")
    remove.add_argument("number", metavar="NUMBER")
    remove.set_defaults(func=run_remove)
    load = commands.add_parser("import", help="add every number of a file")
    load.add_argument("file", metavar="FILE", type=Path)
    load.set_defaults(func=run_import)
    listing = commands.add_parser("list", help="the numbers, newest first")
    listing.add_argument("--limit", type=int, default=100, help="numbers per page (100)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)


def _open() -> tuple[CallStore, OutboundStore]:
    from bot.call.records import open_store

    quiet_logs()
    store = open_store(Settings.load())
    return store, OutboundStore(store.engine)


def _fail(command: str, message: str) -> int:
    print(f"callagent dnc {command}: {message}", file=sys.stderr)
    return 2


def run_add(args: argparse.Namespace) -> int:
    """``callagent dnc add NUMBER``."""
    store, outbound = _open()
    try:
        added = outbound.dnc_add(args.number, "cli")
    except OutboundStoreError as e:
        return _fail("add", f"NUMBER: {e}")
    finally:
        store.close()
    print("added to the do-not-call list" if added else "already on the do-not-call list")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """``callagent dnc remove NUMBER``."""
    store, outbound = _open()
    try:
        removed = outbound.dnc_remove(args.number)
    except OutboundStoreError as e:
        return _fail("remove", f"NUMBER: {e}")
    finally:
        store.close()
    if not removed:
        print("not on the do-not-call list", file=sys.stderr)
        return 1
    print("removed from the do-not-call list")
    return 0


def numbers_in(text: str) -> list[tuple[int, str]]:
    """(line, number) pairs: a CSV's ``phone`` column, else each non-empty line."""
    lines = text.lstrip("\ufeff").splitlines()
    first = lines[0].lower() if lines else ""
    if "phone" in [h.strip() for h in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        found: list[tuple[int, str]] = []
        for row in reader:
            phone = next((v for k, v in row.items() if k and k.strip().lower() == "phone"), "")
            found.append((reader.line_num, (phone or "").strip()))
        return found
    return [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]


def run_import(args: argparse.Namespace) -> int:
    """``callagent dnc import FILE``."""
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return _fail("import", f"FILE {args.file}: cannot read it ({type(e).__name__})")
    try:
        pairs = numbers_in(text)
    except csv.Error as e:
        return _fail("import", f"FILE {args.file}: not valid CSV ({e})")
    store, outbound = _open()
    try:
        added, bad = outbound.dnc_add_many([number for _line, number in pairs], "import")
    finally:
        store.close()
    for index in bad:
        print(f"  line {pairs[index][0]}: not a phone number", file=sys.stderr)
    print(f"{added} numbers added ({len(pairs) - added - len(bad)} already listed, {len(bad)} bad)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``callagent dnc list``."""
    store, outbound = _open()
    try:
        entries = outbound.dnc_list(limit=max(1, args.limit), offset=max(0, args.offset))
        total = outbound.dnc_count()
    finally:
        store.close()
    if args.json:
        rows = [
            {"phone": e.phone, "source": e.source, "added_at": e.added_at.isoformat() + "Z"}
            for e in entries
        ]
        print(json.dumps({"total": total, "numbers": rows}, indent=2))
        return 0
    for e in entries:
        print(f"{e.phone:<18} {e.source:<8} {e.added_at:%Y-%m-%d %H:%M} UTC")
    print(f"{len(entries)} of {total} numbers")
    return 0
