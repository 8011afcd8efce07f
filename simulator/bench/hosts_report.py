"""``callagent bench hosts``: the figures from a run, as a table, JSON and HTML."""

from __future__ import annotations

import argparse
import html
from collections import Counter
from pathlib import Path
from typing import Any

from integrations.percentile import latency_summary


def _lost(call: dict[str, Any]) -> bool:
    """A call that did not go as the caller expected (cut off, or a question unanswered)."""
    return call["error"] is not None or call["unanswered"] > 0


def summarise(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Per host and overall: calls carried, lost, records closed, events readable."""
    records: dict[str, dict[str, Any]] = run["records"]
    killed: dict[str, Any] = run["killed"]
    dead = killed.get("host")
    rows = []
    for name in run["hosts"]:
        calls = [c for c in run["calls"] if records.get(c["sid"], {}).get("host") == name]
        theirs = [records[c["sid"]] for c in calls]
        stats = latency_summary([v for c in calls for v in c["latencies"]])
        rows.append(
            {
                "host": name,
                "killed": name == dead,
                "calls": len(calls),
                "completed": sum(not _lost(c) for c in calls),
                "lost": sum(_lost(c) for c in calls),
                "records_closed": sum(bool(r.get("ended_at")) for r in theirs),
                "outcomes": dict(Counter(str(r.get("outcome")) for r in theirs)),
                "end_reasons": dict(Counter(str(r.get("end_reason")) for r in theirs)),
                "p95_ms": stats["p95_ms"],
            }
        )
    unrecorded = [c for c in run["calls"] if c["sid"] not in records]
    callbacks = [c["callback"] for c in run["calls"] if c.get("callback", {}).get("action")]
    survivors = [r for r in rows if not r["killed"]]
    dead_row = next((r for r in rows if r["killed"]), None)
    return {
        "bench": "hosts",
        "hosts": len(run["hosts"]),
        "balancer": run["balancer"],
        "speech": run["speech"] or {"speech": args.speech},
        "calls": len(run["calls"]),
        "questions_per_call": args.questions,
        "killed": {k: v for k, v in killed.items() if k != "events"},
        "lost_on_surviving_hosts": sum(r["lost"] for r in survivors),
        "dead_host_calls": dead_row["calls"] if dead_row else 0,
        "dead_host_records_closed": dead_row["records_closed"] if dead_row else 0,
        "dead_host_records_closed_within_s": run["closed_within_s"],
        "dead_host_end_reasons": dead_row["end_reasons"] if dead_row else {},
        "calls_without_record": len(unrecorded),
        "calls_without_record_lost": sum(_lost(c) for c in unrecorded),
        "events_before_kill": killed.get("events"),
        "transfers_asked": sum(bool(c.get("transfer")) for c in run["calls"]),
        "transfer_callbacks": {
            "redirected": len(callbacks),
            "answered_via_balancer": sum(c.get("via_balancer") == 200 for c in callbacks),
            "answered_by_every_host": sum(
                len(c["hosts_ok"]) == c["hosts_asked"] for c in callbacks
            ),
            "answered_by_one_host_only": sum(len(c["hosts_ok"]) == 1 for c in callbacks),
        },
        "per_host": rows,
        "per_call": run["calls"],
    }


def print_report(s: dict[str, Any]) -> None:
    """The table and the headline figures."""
    print(f"\n{s['calls']} calls through {s['balancer']} over {s['hosts']} hosts")
    print(f"{'host':<6} {'calls':>5} {'done':>5} {'lost':>5} {'closed':>7} {'p95 ms':>7}  outcomes")
    for r in s["per_host"]:
        name = r["host"] + ("*" if r["killed"] else "")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        p95 = "-" if r["p95_ms"] is None else f"{r['p95_ms']:.0f}"
        print(
            f"{name:<6} {r['calls']:>5} {r['completed']:>5} {r['lost']:>5} "
            f"{r['records_closed']:>3}/{r['calls']:<3} {p95:>7}  {outcomes}"
        )
    if s["killed"]:
        k = s["killed"]
        down = k.get("balancer_marked_down_s")
        print(
            f"* killed (SIGKILL) {k['t_s']:g} s into the run; hosts at the balancer before: "
            f"{k.get('balancer_before')}; taken out "
            + (f"{down:g} s after" if down is not None else "not within 15 s")
        )
    print(f"calls lost on the surviving hosts: {s['lost_on_surviving_hosts']} (target 0)")
    within = s["dead_host_records_closed_within_s"]
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["dead_host_end_reasons"].items()))
    print(
        f"dead host's call records closed: {s['dead_host_records_closed']} of "
        f"{s['dead_host_calls']}"
        + (f" (all within {within:g} s of the kill)" if within is not None else "")
        + (f"; end reasons: {reasons}" if reasons else "")
    )
    if s["calls_without_record"]:
        print(
            f"calls with no record (never reached a host): {s['calls_without_record']}, "
            f"{s['calls_without_record_lost']} of them lost"
        )
    events = s["events_before_kill"]
    if events:
        print(
            f"live calls whose events every host serves: {events['readable_on_every_host']} of "
            f"{events['live_calls']} (only their own host: {events['readable_on_one_host_only']})"
        )
    cb = s["transfer_callbacks"]
    print(
        f"transfers: {s['transfers_asked']} asked, {cb['redirected']} redirected; their Dial "
        f"callback answered through the balancer {cb['answered_via_balancer']}, by every "
        f"living host {cb['answered_by_every_host']} (only the owner: "
        f"{cb['answered_by_one_host_only']})"
    )


def save_html(path: Path, s: dict[str, Any]) -> None:
    """The report as a small HTML page."""
    head = ["host", "calls", "completed", "lost", "records closed", "p95 ms", "outcomes"]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["host"] + (" (killed)" if r["killed"] else ""),
                r["calls"],
                r["completed"],
                r["lost"],
                f"{r['records_closed']}/{r['calls']}",
                r["p95_ms"],
                r["outcomes"],
            )
        )
        + "</tr>"
        for r in s["per_host"]
    )
    facts = {
        "calls lost on the surviving hosts (target 0)": s["lost_on_surviving_hosts"],
        "dead host's records closed": f"{s['dead_host_records_closed']}/{s['dead_host_calls']}",
        "closed within (s of the kill)": s["dead_host_records_closed_within_s"],
        "events before the kill": s["events_before_kill"],
        "transfer callbacks": s["transfer_callbacks"],
        "speech": s["speech"],
    }
    items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in facts.items())
    page = (
        "<!doctype html><meta charset=utf-8><title>callagent bench hosts</title>"
        f"<h1>{s['calls']} calls over {s['hosts']} hosts behind HAProxy</h1>"
        f"<table border=1><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"
        f"<ul>{items}</ul>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    print(f"saved {path}")
