"""``callagent nlu calibrate --from-calls``: recommend NLU thresholds from recorded calls.

Reads the caller turns of recorded calls (``--since``, default the last 30 days),
labels them from what the caller did next (:mod:`simulator.nlu.call_labels`),
then runs the same threshold sweep as ``nlu calibrate`` on a validation set.
"""

from __future__ import annotations

import argparse
import json

from simulator.nlu.calibration import sweep
from simulator.nlu.call_labels import RecordedTurn, weak_labels
from simulator.nlu.reliability_plot import write_reliability_svg

MIN_LABELLED = 20


def recorded_turns(store, where) -> list[list[RecordedTurn]]:  # noqa: ANN001 - CallStore, CallFilter
    """The caller turns of every matching call, in call order."""
    calls: list[list[RecordedTurn]] = []
    for call in store.iter_calls(where):
        calls.append(
            [
                RecordedTurn(t["intent"], t["confidence"], t["band"], t["path"])
                for t in call["turns"]
                if t["kind"] == "caller"
            ]
        )
    return calls


def run_calibrate_from_calls(args: argparse.Namespace) -> int:
    """``callagent nlu calibrate --from-calls``."""
    from bot.call.records import open_store
    from bot.cli.calls import quiet_logs
    from bot.settings import Settings
    from integrations.storage import CallFilter, parse_time

    quiet_logs()
    where = CallFilter(since=parse_time(args.since))
    store = open_store(Settings.load())
    try:
        labels = weak_labels(recorded_turns(store, where))
    finally:
        store.close()
    n = len(labels.gold)
    if n < MIN_LABELLED:
        print(
            f"only {n} labelled turns in calls since {args.since} "
            f"(need {MIN_LABELLED}): record more calls or widen --since"
        )
        return 1
    result = sweep(
        labels.predictions,
        labels.gold,
        clarify=args.clarify,
        target_wrong_rate=args.target_wrong_rate,
    )
    svg = write_reliability_svg(
        result.bins,
        args.svg,
        title=f"recorded calls: reliability (ECE {result.expected_calibration_error:.3f})",
        act=result.recommended_act,
        clarify=result.recommended_clarify,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "source": "calls",
                    "since": args.since,
                    "turns": labels.turns_seen,
                    "labelled": n,
                    "rules": dict(labels.rules),
                    **result.as_dict(),
                    "svg": str(svg),
                },
                indent=2,
            )
        )
        return 0
    print(f"recorded calls since {args.since}: {labels.turns_seen} caller turns, {n} labelled")
    for rule, count in labels.rules.most_common():
        print(f"  {rule}: {count}")
    print("\n".join(result.report_lines()))
    print("labels are inferred from what callers did next; see simulator/nlu/call_labels.py")
    print(f"reliability diagram: {svg}")
    return 0
