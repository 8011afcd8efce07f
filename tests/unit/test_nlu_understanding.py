import argparse
import json
from pathlib import Path

import pytest

from bot.agent import load_agent
from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction, NLUThresholds
from integrations.nlu.entities import EntityExtractor
from processors.act_guard import ActGuard
from processors.clarify_choice import ClarifyChoice
from simulator.nlu import cli as nlu
from simulator.nlu.understanding import outcome, understand
from simulator.understanding.requests import CallerRequest, load_request_set

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
            CallerRequest(text="one", intent="a"),
            CallerRequest(text="two", intent="a", style="terse"),
            CallerRequest(text="three", intent="a"),
            CallerRequest(text="four", intent=OUT_OF_SCOPE),
        ],
        T,
        entities=EntityExtractor([]),
    )
    assert report.share("acted_right") == 1 / 3
    assert report.share("acted_wrong") == 1 / 3
    assert report.share("repaired", in_scope=False) == 1.0
    assert report.top_right() == 1 / 3
    assert ("a", "b", 1) in report.confusions()
    assert ("a", "b (repaired)", 1) in report.confusions()
    assert report.by_intent["a"]["acted_wrong"] == 1
    assert any("acted_wrong" in line for line in report.lines())
    assert report.overall() == (2 / 4, 1 / 4)


def said(intent: str, confidence: float = 0.97) -> IntentPrediction:
    return IntentPrediction(intent, confidence, ((intent, confidence), ("other", 0.01)))


TURNS = {
    "When is my next appointment?": said("next_appointment", 0.99),
    "What time do you open?": said("opening_hours", 0.99),
    "yup": said("affirm"),
    "nope": said("deny"),
    "thanks bye": said("goodbye", 0.9),
}
GOODBYE_CHECKED = ActGuard(intents=frozenset({"goodbye"}), ends_call=frozenset({"goodbye"}))


def decide(*requests: CallerRequest):
    """The guarded router's outcome for each request."""
    report = understand(
        Fixed(TURNS), requests, T, guard=GOODBYE_CHECKED, entities=EntityExtractor([])
    )
    return [r.outcome for r in report.results]


@pytest.mark.parametrize("text", ["yup", "nope"])
def test_a_yes_or_no_after_a_context_question_acts(text: str):
    intent = TURNS[text].intent
    context = "When is my next appointment?"
    assert decide(CallerRequest(text=text, intent=intent, context=context)) == ["acted_right"]
    # said as the call's first words, nothing was asked: the router repairs it
    assert decide(CallerRequest(text=text, intent=intent)) == ["repaired"]


def test_a_goodbye_after_a_request_acts():
    context = "What time do you open?"
    assert decide(CallerRequest(text="thanks bye", intent="goodbye", context=context)) == [
        "acted_right"
    ]
    # before any request, the goodbye is checked
    assert decide(CallerRequest(text="thanks bye", intent="goodbye")) == ["clarified_right"]


def test_each_request_gets_a_fresh_router():
    # a context request earlier in the set does not count as asked for the next one
    outcomes = decide(
        CallerRequest(text="yup", intent="affirm", context="When is my next appointment?"),
        CallerRequest(text="yup", intent="affirm"),
    )
    assert outcomes == ["acted_right", "repaired"]


def test_a_clarifying_question_offering_the_meant_intent_as_the_runner_up_is_right():
    close = IntentPrediction("a", 0.6, ranking=[("a", 0.6), ("b", 0.4)])
    request = CallerRequest(text="a or b", intent="b")

    def decided(choice: ClarifyChoice | None) -> str:
        report = understand(
            Fixed({"a or b": close}), [request], T, entities=EntityExtractor([]), choice=choice
        )
        return report.results[0].outcome

    assert decided(None) == "clarified_wrong"
    assert decided(ClarifyChoice(0.5, frozenset({"a", "b"}))) == "clarified_right"
    assert decided(ClarifyChoice(0.1, frozenset({"a", "b"}))) == "clarified_wrong"


def test_the_context_decision_is_reported():
    report = understand(
        Fixed(TURNS),
        [CallerRequest(text="yup", intent="affirm", context="When is my next appointment?")],
        T,
        guard=GOODBYE_CHECKED,
        entities=EntityExtractor([]),
    )
    row = report.results[0]
    assert (row.context_intent, row.context_band, row.band) == ("next_appointment", "act", "act")
    assert report.as_dict()["in_context"] == {
        "requests": 1,
        "intents": ["affirm"],
        "context_acted": 1,
    }
    assert any("judged in context (affirm): 1 requests" in line for line in report.lines())


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


def test_understanding_command_prints_json(capsys, tmp_path, monkeypatch):
    # The command's plumbing, not the tuning (tests/unit/test_encoder_tuning.py): the stock
    # encoder, so the empty cache dir does not tune one for minutes.
    monkeypatch.setenv("CALLAGENT_NLU_TUNE_ENCODER", "false")
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["nlu", "understanding", "--set", str(DEV_SET), "--cache-dir", str(tmp_path), "--json"]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    request_set = load_request_set(DEV_SET)
    assert out["n_requests"] == len(request_set.requests)
    assert set(out["in_scope"]) >= {"acted_right", "acted_wrong", "repaired", "top_right"}
    assert out["guard"] is True
    # every answer and goodbye was judged after its context line, which the agent acted on
    in_context = [r for r in request_set.requests if r.intent in ("affirm", "deny", "goodbye")]
    assert out["in_context"]["requests"] == len(in_context)
    assert out["in_context"]["context_acted"] == len(in_context)


def test_understanding_command_sets_the_act_guard_s_bars(agent):
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    base = ["nlu", "understanding", "--set", str(DEV_SET)]
    shipped = ActGuard.for_agent(agent)
    assert nlu._guard(parser.parse_args(base), shipped) == shipped
    args = parser.parse_args([*base, "--confirm-act", "0.75", "--confirm-margin", "0.2"])
    guard = nlu._guard(args, shipped)
    assert (guard.act_threshold, guard.min_margin) == (0.75, 0.2)
    assert guard.intents == shipped.intents


def test_understanding_command_rejects_a_bad_set(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: nowhere.yaml\nrequests: []\n")
    parser = argparse.ArgumentParser()
    nlu.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nlu", "understanding", "--set", str(bad)])
    assert args.func(args) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_heard_requests_are_decided_on_what_the_recogniser_heard():
    from simulator.understanding.heard import Heard

    heard = {
        "What time do you open?": Heard("what time do you often", (), 0.9),
        "When is my next appointment?": Heard("", (), None),
        "yup": Heard("yup", (), 0.2, (0.9,)),  # a doubted turn whose word was heard well
        "Yes please.": Heard("yes please", (), 0.2, (0.1, 0.2)),  # doubted, words too
    }
    turns = {
        "what time do you often": said("opening_hours", 0.99),
        "yup": said("affirm"),
        "yes please": said("affirm"),
    }
    report = understand(
        Fixed(turns),
        [
            CallerRequest(text="What time do you open?", intent="opening_hours"),
            CallerRequest(text="When is my next appointment?", intent="next_appointment"),
            CallerRequest(text="yup", intent="affirm", context="What time do you open?"),
            CallerRequest(text="Yes please.", intent="affirm", context="What time do you open?"),
        ],
        T,
        entities=EntityExtractor([]),
        heard=heard,
        voice="kal",
        unsure_below=0.5,
    )
    outcomes = [r.outcome for r in report.results]
    assert outcomes == ["acted_right", "repaired", "acted_right", "repaired"]
    assert [r.heard for r in report.results] == ["what time do you often", "", "yup", "yes please"]
    assert {r.voice for r in report.results} == {"kal"}


def test_words_that_ask_for_a_person_are_scored_as_the_call_hands_them_off():
    from processors.person_request import PersonRequest
    from simulator.nlu.understanding import HandOffRule

    turns = {
        "representative": IntentPrediction("a", 0.3),  # repaired by the router
        "can I speak to a person about my bill": IntentPrediction("b", 0.95),
        "what time do you open": IntentPrediction("a", 0.95),
    }
    requests = [
        CallerRequest(text="representative", intent="talk_to_human"),
        CallerRequest(text="can I speak to a person about my bill", intent="b"),
        CallerRequest(text="what time do you open", intent="a"),
    ]
    rule = HandOffRule(PersonRequest(), frozenset({"talk_to_human", "emergency"}))

    def outcomes(hand_off: HandOffRule | None) -> list[str]:
        report = understand(
            Fixed(turns), requests, T, entities=EntityExtractor([]), hand_off=hand_off
        )
        return [r.outcome for r in report.results]

    assert outcomes(None) == ["repaired", "acted_right", "acted_right"]
    # put through to a person: right for a hand-off intent, wrong for a billing question
    assert outcomes(rule) == ["acted_right", "acted_wrong", "acted_right"]


def test_the_agent_s_hand_off_rule_follows_its_escalation_settings(agent):
    from dataclasses import replace

    from simulator.nlu.understanding import HandOffRule

    rule = HandOffRule.for_agent(agent)
    assert rule is not None and "talk_to_human" in rule.intents
    off = replace(
        agent,
        escalation=replace(
            agent.escalation,
            explicit_request=replace(agent.escalation.explicit_request, enabled=False),
        ),
    )
    assert HandOffRule.for_agent(off) is None
