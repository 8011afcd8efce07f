import argparse
import json
from pathlib import Path

from bot.agent import load_agent
from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction, NLUThresholds
from simulator.nlu import cli as nlu
from simulator.nlu.understanding import outcome, understand
from simulator.understanding.requests import load_request_set

DEV_SET = Path(__file__).parents[2] / "scenarios" / "dental" / "requests" / "understanding-dev.yaml"
T = NLUThresholds(act=0.85, clarify=0.5)


def test_outcomes_follow_the_router_bands():
    assert outcome("a", IntentPrediction("a", 0.9), T) == "acted_right"
    assert outcome("a", IntentPrediction("b", 0.9), T) == "acted_wrong"
    assert outcome("a", IntentPrediction("a", 0.6), T) == "clarified_right"
    assert outcome("a", IntentPrediction("b", 0.6), T) == "clarified_wrong"
    assert outcome("a", IntentPrediction("a", 0.2), T) == "repaired"
    assert outcome(OUT_OF_SCOPE, IntentPrediction(OUT_OF_SCOPE, 0.99), T) == "repaired"
    assert outcome(OUT_OF_SCOPE, IntentPrediction("a", 0.95), T) == "acted_wrong"


class Fixed:
    intents = ("a", "b")

    def __init__(self, answers):
        self.answers = answers

    def classify(self, text):
        return self.answers[text]


def test_report_counts_per_intent_and_lists_confusions():
    classifier = Fixed(
        {
            "one": IntentPrediction("a", 0.9, (("a", 0.9), ("b", 0.1))),
            "two": IntentPrediction("b", 0.95, (("b", 0.95), ("a", 0.05))),
            "three": IntentPrediction(OUT_OF_SCOPE, 0.8, (("b", 0.2), ("a", 0.1))),
            "four": IntentPrediction(OUT_OF_SCOPE, 0.9, (("a", 0.1),)),
        }
    )
    report = understand(
        classifier,
        [
            ("one", "a", "plain"),
            ("two", "a", "terse"),
            ("three", "a", "plain"),
            ("four", OUT_OF_SCOPE, "plain"),
        ],
        T,
    )
    assert report.share("acted_right") == 1 / 3
    assert report.share("acted_wrong") == 1 / 3
    assert report.share("repaired", in_scope=False) == 1.0
    assert report.top_right() == 1 / 3
    assert ("a", "b", 1) in report.confusions()
    assert ("a", "b (repaired)", 1) in report.confusions()
    assert report.by_intent["a"]["acted_wrong"] == 1
    assert any("acted_wrong" in line for line in report.lines())


def test_dev_set_covers_every_intent_and_the_knowledge_base():
    request_set = load_request_set(DEV_SET)
    agent = load_agent(request_set.agent_file)
    names = {intent.name for intent in agent.intents}
    counts = {}
    for r in request_set.requests:
        counts[r.intent] = counts.get(r.intent, 0) + 1
    assert set(counts) == names | {OUT_OF_SCOPE}
    assert all(counts[n] >= 6 for n in names)
    assert counts[OUT_OF_SCOPE] >= 15
    examples = {t.lower() for t, _ in agent.training_examples()}
    assert not [r.text for r in request_set.requests if r.text.lower().strip("?.!") in examples]


def test_understanding_command_prints_json(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["nlu", "understanding", "--set", str(DEV_SET), "--cache-dir", str(tmp_path), "--json"]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_requests"] == len(load_request_set(DEV_SET).requests)
    assert set(out["in_scope"]) >= {"acted_right", "acted_wrong", "repaired", "top_right"}


def test_understanding_command_rejects_a_bad_set(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: nowhere.yaml\nrequests: []\n")
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nlu", "understanding", "--set", str(bad)])
    assert args.func(args) == 2
    assert "bad.yaml" in capsys.readouterr().err
