"""``callagent agent check FILE``: warn an agent's author before any caller calls.

``callagent agent tune FILE...`` tunes the sentence encoder to each agent ahead of
serving (what the server otherwise does at its first start; e.g. in an image build).

Loads and validates the agent file, its outbound section included (exit 2 with the
file's problems when it is invalid), then cross-validates its examples, text only (see
:mod:`integrations.nlu.coverage`), and prints warnings: intents with too few examples,
intents the classifier confuses, near-duplicate examples across intents, and the
estimated share of requests acted on at the file's thresholds. Warnings do not fail the
command (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.agent import AgentFileError, load_agent
from processors.agent_definition import AgentDefinition


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``agent check``."""
    agent = subparsers.add_parser("agent", help="check an agent file")
    commands = agent.add_subparsers(dest="agent_command", required=True)
    check = commands.add_parser(
        "check", help="validate an agent file and warn about confusable or thin intents"
    )
    check.add_argument("file", type=Path, help="the agent YAML file")
    check.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)
    tune = commands.add_parser(
        "tune", help="tune the sentence encoder to agent files now (cached for the server)"
    )
    tune.add_argument("files", type=Path, nargs="+", help="the agent YAML files")
    tune.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """``callagent agent tune``: exit 1 when an encoder could not be tuned."""
    from bot.settings import Settings
    from integrations.nlu.agent_classifier import tuned_model
    from integrations.nlu.tuning import EncoderTuningError

    cache_dir = Settings.load().cache_dir / "nlu"
    try:
        agents = [(path, load_agent(path)) for path in args.files]
    except AgentFileError as e:
        print(e, file=sys.stderr)
        return 2
    for path, agent in agents:
        try:
            model = tuned_model(agent.training_examples(), cache_dir)
        except EncoderTuningError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 1
        print(f"{path}: {model}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``callagent agent check``."""
    from integrations.nlu.coverage import check_examples

    try:
        agent = load_agent(args.file)
    except AgentFileError as e:
        print(e, file=sys.stderr)
        return 2
    thresholds = agent.nlu.thresholds()
    report = check_examples(agent.training_examples(), thresholds, folds=max(2, args.folds))
    warnings = report.warnings()
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(args.file),
                    "examples": report.n_examples,
                    "estimated_act_rate": report.act_rate,
                    "estimated_wrong_action_rate": report.wrong_action_rate,
                    "act_rate_by_intent": report.act_rate_by_intent,
                    "warnings": warnings,
                    "outbound": _outbound_summary(agent),
                },
                indent=2,
            )
        )
        return 0
    print(f"{args.file}: {len(agent.intents)} intents, {report.n_examples} examples")
    outbound = _outbound_summary(agent)
    if outbound is not None:
        print(
            f"outbound: variables {', '.join(outbound['variables']) or '(none)'}; outcomes "
            + ", ".join(f"{i} -> {d}" for i, d in outbound["outcomes"].items())
            + f"; opt-out {', '.join(outbound['opt_out_intents'])}"
        )
    for line in warnings:
        print(f"warning: {line}")
    print(
        f"estimated on held-out examples ({report.folds}-fold cross-validation, "
        f"act >= {thresholds.act}): acted right {100 * report.act_rate:.0f} %, "
        f"acted wrong {100 * report.wrong_action_rate:.1f} %"
    )
    low = [f"{i} {100 * r:.0f} %" for i, r in report.act_rate_by_intent.items() if r < 0.5]
    if low:
        print("intents acted on for fewer than half their held-out examples: " + ", ".join(low))
    print(f"{len(warnings)} warning(s)" if warnings else "no warnings")
    return 0


def _outbound_summary(agent: AgentDefinition) -> dict[str, Any] | None:
    """The outbound section as checked (None: the agent only answers)."""
    outbound = agent.outbound
    if outbound is None:
        return None
    return {
        "variables": list(outbound.variables),
        "outcomes": {intent: str(d) for intent, d in outbound.outcomes.items()},
        "opt_out_intents": list(outbound.opt_out_intents),
        "voicemail": bool(outbound.voicemail),
    }
