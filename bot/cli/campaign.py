"""``callagent campaign``: create and run outbound campaigns from the terminal.

``callagent campaign create --agent appointment_reminders --csv FILE [--name NAME]
[--window "mon-fri 09:00-19:00"]... [--timezone America/New_York] [--holidays US[/CA]]
[--max-concurrent 5] [--cps 1] [--retry no-answer=2x30m]... [--from +1555...]
[--webhook URL]`` imports the file (good rows in, each bad one named by line and reason)
and starts the campaign.

``callagent campaign list|show ID|pause ID|resume ID|cancel ID`` and
``callagent campaign export ID [--format csv|jsonl] [-o FILE]``.

They work on the call-record database directly (``DATABASE_URL``), so they need no
running server; the job queue dials.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bot.campaign_agents import UnknownAgentError, agent_variables
from bot.cli.calls import quiet_logs
from bot.settings import Settings
from integrations.outbound.campaign_types import CAMPAIGN_STATES, CampaignError, CampaignInfo
from integrations.outbound.campaigns import CampaignStore
from integrations.outbound.contacts_csv import ContactsError
from integrations.outbound.export import RESULT_EXPORTERS
from integrations.outbound.retries import RetryPolicy, RetryRuleError
from integrations.outbound.rules import CampaignRules, RulesError
from integrations.outbound.windows import WindowError, parse_window_flag
from integrations.storage import CallStore

FLAGS = {
    "agent": "--agent",
    "windows": "--window",
    "timezone": "--timezone",
    "holidays": "--holidays",
    "max_concurrent": "--max-concurrent",
    "calls_per_second": "--cps",
    "retries": "--retry",
    "from_number": "--from",
    "result_webhook_url": "--webhook",
}
"""Each campaign rule's command-line flag (errors name the flag)."""


def on_campaign_changed(settings: Settings) -> Callable[[str], None]:
    """What the CLI calls with a campaign's id after creating or resuming it.

    Enqueues ``kick_campaign`` on the settings' job queue: the server or a
    ``callagent worker`` consuming it starts dialling at once.
    """
    from bot.outbound.wiring import campaign_kicker

    return campaign_kicker(settings)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``campaign create|list|show|pause|resume|cancel|export``."""
    campaign = subparsers.add_parser("campaign", help="outbound campaigns: create, watch, export")
    commands = campaign.add_subparsers(dest="campaign_command", required=True)

    create = commands.add_parser("create", help="import contacts from CSV and start calling")
    create.add_argument(
        "--agent", required=True, help="agent key (file stem), e.g. appointment_reminders"
    )
    create.add_argument(
        "--csv", required=True, type=Path, help="contacts: phone, timezone?, variables"
    )
    create.add_argument("--name", default="", help="a name for the campaign")
    create.add_argument(
        "--window",
        action="append",
        default=[],
        help="calling window in the callee's time, repeatable: 'mon-fri 09:00-12:00,13:00-19:00'",
    )
    create.add_argument("--timezone", help="zone of callees no row or number places (UTC)")
    create.add_argument("--holidays", default="", help="skip public holidays: US, GB, US/CA...")
    create.add_argument("--max-concurrent", type=int, help="calls at once, at most (5)")
    create.add_argument("--cps", type=float, help="dials started per second, at most (1)")
    create.add_argument(
        "--retry",
        action="append",
        default=[],
        help="repeatable: <disposition>=<times>x<delay>, e.g. no-answer=2x30m busy=3x10m",
    )
    create.add_argument("--from", dest="from_number", default="", help="caller id (E.164)")
    create.add_argument("--webhook", default="", help="POST each contact's result here")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(func=run_create)

    listing = commands.add_parser("list", help="campaigns with their progress")
    listing.add_argument("--state", choices=CAMPAIGN_STATES)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    show = commands.add_parser("show", help="one campaign: rules, progress, contacts")
    show.add_argument("campaign_id", metavar="ID")
    show.add_argument("--contacts", type=int, default=20, help="contacts to list (20)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    for action, text in (
        ("pause", "stop new dials (calls in progress finish)"),
        ("resume", "start dialling again"),
        ("cancel", "cancel: pending contacts are not called (calls in progress finish)"),
    ):
        command = commands.add_parser(action, help=text)
        command.add_argument("campaign_id", metavar="ID")
        command.set_defaults(func=run_move, action=action)

    export = commands.add_parser("export", help="per-contact results as CSV or JSON lines")
    export.add_argument("campaign_id", metavar="ID")
    export.add_argument("--format", choices=sorted(RESULT_EXPORTERS), default="csv")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=run_export)


def _fail(command: str, message: str) -> int:
    print(f"callagent campaign {command}: {message}", file=sys.stderr)
    return 2


def open_campaigns() -> tuple[CallStore, CampaignStore]:
    """The call store at the settings' database and the campaign store on it."""
    from bot.call.records import open_store

    quiet_logs()
    store = open_store(Settings.load())
    return store, CampaignStore(store.engine)


def build_rules(args: argparse.Namespace) -> CampaignRules:
    """The rules the flags give (defaults for the rest).

    Raises:
        RulesError: naming the flag at fault.
    """
    values: dict[str, Any] = {"agent": args.agent, "holidays": args.holidays}
    try:
        windows: dict[str, list[str]] = {}
        for text in args.window:
            days, spans = parse_window_flag(text)
            windows.setdefault(days, []).extend(spans)
    except WindowError as e:
        raise RulesError("windows", str(e)) from None
    if windows:
        values["windows"] = windows
    try:
        values["retries"] = RetryPolicy.parse(args.retry)
    except RetryRuleError as e:
        raise RulesError("retries", str(e)) from None
    optional = {
        "timezone": args.timezone,
        "max_concurrent": args.max_concurrent,
        "calls_per_second": args.cps,
        "from_number": args.from_number,
        "result_webhook_url": args.webhook,
    }
    values.update({k: v for k, v in optional.items() if v not in (None, "")})
    return CampaignRules(**values)


def run_create(args: argparse.Namespace) -> int:
    """``callagent campaign create``."""
    try:
        rules = build_rules(args)
    except RulesError as e:
        return _fail("create", f"{FLAGS.get(e.field, e.field)}: {e.reason}")
    settings = Settings.load()
    try:
        required = agent_variables(settings, args.agent)
    except UnknownAgentError as e:
        return _fail("create", f"--agent: {e}")
    try:
        text = args.csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return _fail("create", f"--csv {args.csv}: cannot read it ({type(e).__name__})")
    store, campaigns = open_campaigns()
    try:
        info, problems = campaigns.create_from_csv(args.name, rules, text, required=required)
    except (ContactsError, CampaignError) as e:
        return _fail("create", f"--csv {args.csv}: {e}")
    finally:
        store.close()
    on_campaign_changed(settings)(info.id)
    if args.json:
        print(json.dumps(_created(info, problems), indent=2))
        return 0
    print(f"campaign {info.id} created: {info.progress.total} contacts imported, running")
    from bot.outbound.wiring import campaign_dial_problem

    problem = campaign_dial_problem(settings)
    if problem is not None:
        print(f"warning: {problem}", file=sys.stderr)
    for problem in problems:
        print(f"  line {problem.line}: {problem.reason}")
    if problems:
        print(f"{len(problems)} rows not imported")
    return 0


def _created(info: CampaignInfo, problems: list[Any]) -> dict[str, Any]:
    return {
        "id": info.id,
        "imported": info.progress.total,
        "problems": [p.as_json() for p in problems],
    }


def run_list(args: argparse.Namespace) -> int:
    """``callagent campaign list``."""
    store, campaigns = open_campaigns()
    try:
        found = campaigns.campaigns(state=args.state)
    finally:
        store.close()
    if args.json:
        print(json.dumps([c.as_json() for c in found], indent=2))
        return 0
    if not found:
        print("no campaigns")
        return 0
    print(f"{'campaign':<26} {'state':<10} {'agent':<24} {'done':>11} {'pending':>7} name")
    for c in found:
        p = c.progress
        print(
            f"{c.id:<26} {c.state:<10} {c.agent:<24} {p.count('done'):>5}/{p.total:<5} "
            f"{p.count('pending'):>7} {c.name}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    """``callagent campaign show ID``."""
    store, campaigns = open_campaigns()
    try:
        info = campaigns.campaign(args.campaign_id)
        contacts = campaigns.contacts(args.campaign_id, limit=max(0, args.contacts))
    except CampaignError as e:
        return _fail("show", str(e))
    finally:
        store.close()
    if args.json:
        print(json.dumps({**info.as_json(), "contacts": [c.as_json() for c in contacts]}, indent=2))
        return 0
    rules = info.rules
    print(f"campaign {info.id}  {info.state}  {info.name}  (agent {info.agent})")
    windows = "; ".join(f"{d} {','.join(s)}" for d, s in rules.windows.items())
    print(f"  windows {windows}  default zone {rules.timezone}  holidays {rules.holidays or '-'}")
    print(
        f"  at most {rules.max_concurrent} calls at once, {rules.calls_per_second:g} per second; "
        f"retries {' '.join(rules.retries.texts()) or 'none'}"
    )
    p = info.progress
    states = ", ".join(f"{s} {n}" for s, n in p.states.items() if n)
    print(f"  {p.total} contacts: {states}; {p.active_attempts} calls in progress")
    if p.dispositions:
        print("  results: " + ", ".join(f"{d} {n}" for d, n in p.dispositions.items()))
    for c in contacts:
        when = f" next {c.next_at:%Y-%m-%d %H:%M} UTC" if c.next_at and c.state == "pending" else ""
        print(
            f"  {c.id}  line {c.line}  {c.phone}  {c.state:<9} attempts {c.attempts}  "
            f"{c.disposition or '-'}{when}"
        )
    return 0


def run_move(args: argparse.Namespace) -> int:
    """``callagent campaign pause|resume|cancel ID``."""
    store, campaigns = open_campaigns()
    try:
        info = getattr(campaigns, args.action)(args.campaign_id)
    except CampaignError as e:
        return _fail(args.action, str(e))
    finally:
        store.close()
    if args.action == "resume":
        on_campaign_changed(Settings.load())(info.id)
    print(f"campaign {info.id} {info.state}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``callagent campaign export ID``."""
    store, campaigns = open_campaigns()
    exporter = RESULT_EXPORTERS[args.format]()
    try:
        campaigns.campaign_exists(args.campaign_id)
        target = (
            args.output.open("w", encoding="utf-8", newline="")
            if args.output
            else nullcontext(sys.stdout)
        )
        with target as out:
            written = exporter.write(campaigns.iter_contacts(args.campaign_id), out)
    except CampaignError as e:
        return _fail("export", str(e))
    finally:
        store.close()
    print(
        f"exported {written} contacts to {args.output or 'stdout'} ({args.format})", file=sys.stderr
    )
    return 0
