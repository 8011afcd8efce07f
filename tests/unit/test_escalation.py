"""Each escalation trigger fires, carries its reason, and can be switched off."""

import dataclasses

import pytest
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from bot.agent import AgentFileError, load_agent
from integrations.crm.base import Authentication, AuthMethod, AuthStatus, CallerRecord
from integrations.sentiment import VaderSentiment
from processors.act_guard import HeardDoubt
from processors.agent_definition import SentimentTrigger
from processors.call_recorder import CallRecorder
from processors.escalation import EscalationProcessor
from processors.frames import (
    HAND_OFF,
    OUT_OF_SCOPE,
    ActionWithdrawnFrame,
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    DecisionPath,
    EscalationFrame,
    NLUResultFrame,
    PrefetchStatus,
    TransferResultFrame,
)
from tests.support.frames import spoken


@pytest.fixture(scope="module")
def vader():
    return VaderSentiment()


def processor(agent, vader, doubt=None, **switches):
    config = agent.escalation
    for name, value in switches.items():
        config = dataclasses.replace(
            config, **{name: dataclasses.replace(getattr(config, name), **value)}
        )
    return EscalationProcessor(
        config,
        handoff_line=agent.transfer.handoff_line,
        transfer_intents=frozenset({"talk_to_human", "emergency"}),
        sentiment=vader,
        call_id="t1",
        doubt=doubt,
        transport="test",
    )


def turn(
    text, intent=OUT_OF_SCOPE, band=Band.REPAIR, conf=0.2, path=DecisionPath.CLASSIFIER, **entities
):
    return NLUResultFrame(
        text=text, intent=intent, confidence=conf, band=band, path=path, entities=entities
    )


def reply(text, intent=None, hands_off=False):
    return [BotReplyFrame(text=text, intent=intent, hands_off=hands_off), TTSSpeakFrame(text)]


def escalations(frames):
    return [f for f in frames if isinstance(f, EscalationFrame)]


async def test_explicit_request_uses_the_dialogue_handoff_line(agent, vader):
    line = agent.transfer.handoff_line
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn("let me talk to a person", "talk_to_human", Band.ACT, 0.97),
            *reply(line, "talk_to_human", hands_off=True),
        ],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame, EscalationFrame],
    )
    escalation = escalations(down)[0]
    assert escalation.trigger == "explicit_request"
    assert spoken(down) == [line]
    summary = escalation.summary
    assert summary["reason"] == "explicit_request"
    assert summary["transcript"][0] == {"role": "caller", "text": "let me talk to a person"}
    assert summary["intents"][0]["intent"] == "talk_to_human"


async def test_explicit_request_in_other_phrasings_and_keypad_zero(agent, vader):
    # The classifier missed it, the phrasing still counts; the bot says its own hand-off line.
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[turn("could you connect me with a real human"), *reply("Sorry?")],
    )
    assert escalations(down)[0].trigger == "explicit_request"
    assert spoken(down) == [agent.transfer.handoff_line]  # the repair line was silenced
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn("DTMF: 0", "talk_to_human", Band.ACT, 1.0, DecisionPath.DTMF),
            *reply(agent.transfer.handoff_line, "talk_to_human", True),
        ],
    )
    assert escalations(down)[0].reason == "keypad 0"


@pytest.mark.parametrize("words", ["Representative.", "An agent, please.", "operator please"])
async def test_a_bare_request_for_a_person_as_the_recogniser_prints_it(agent, vader, words):
    down, _ = await run_test(
        processor(agent, vader), frames_to_send=[turn(words), *reply("Sorry?")]
    )
    assert escalations(down)[0].trigger == "explicit_request"


@pytest.mark.parametrize(
    "words", ["Agent Smith called me.", "a person of interest", "My agent is away."]
)
async def test_a_person_named_in_passing_is_no_request(agent, vader, words):
    down, _ = await run_test(
        processor(agent, vader), frames_to_send=[turn(words), *reply("Sorry?")]
    )
    assert escalations(down) == []


async def test_a_turn_joined_to_a_withdrawn_request_for_a_person_is_read_for_its_new_words(
    agent, vader
):
    asked = "Let me talk to a person, please."
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn(asked, "talk_to_human", Band.ACT, 0.97),
            *reply(agent.transfer.handoff_line, "talk_to_human", hands_off=True),
            ActionWithdrawnFrame(frozenset({HAND_OFF})),  # the caller went on over the line
            turn(f"{asked} I mean, what are your hours?", "opening_hours", Band.ACT, 0.99),
            *reply("We're open Monday to Friday.", "opening_hours"),
        ],
    )
    assert len(escalations(down)) == 1  # the withdrawn one: the joined turn asks for the hours
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn(asked, "talk_to_human", Band.ACT, 0.97),
            *reply(agent.transfer.handoff_line, "talk_to_human", hands_off=True),
            ActionWithdrawnFrame(frozenset({HAND_OFF})),
            turn(f"{asked} Can I speak to an operator?", "opening_hours", Band.REPAIR, 0.3),
            *reply("Sorry?"),
        ],
    )
    assert len(escalations(down)) == 2  # its new words ask for a person again


async def test_explicit_request_switched_off_declines_the_transfer(agent, vader):
    down, _ = await run_test(
        processor(agent, vader, explicit_request={"enabled": False}),
        frames_to_send=[
            turn("let me talk to a person", "talk_to_human", Band.ACT, 0.97),
            *reply(agent.transfer.handoff_line, "talk_to_human", hands_off=True),
        ],
    )
    assert not escalations(down)
    assert spoken(down) == [agent.escalation.unavailable_line]


async def test_consecutive_failed_turns(agent, vader):
    frames = []
    for text in ("blorp", "mmm the thing", "uh what"):
        frames += [turn(text), *reply("Sorry, could you say that again?")]
    down, _ = await run_test(processor(agent, vader), frames_to_send=frames)
    escalation = escalations(down)[0]
    assert escalation.trigger == "failed_turns" and "3 turns" in escalation.reason
    assert spoken(down)[-1] == agent.transfer.handoff_line
    assert spoken(down).count("Sorry, could you say that again?") == 2  # third one silenced


async def test_failed_turns_reset_on_understanding_and_can_be_switched_off(agent, vader):
    frames = [
        turn("blorp"),
        turn("mmm"),
        turn("hours", "opening_hours", Band.ACT, 0.95),
        turn("uh"),
        turn("what"),
    ]
    down, _ = await run_test(processor(agent, vader), frames_to_send=frames)
    assert not escalations(down)
    frames = [turn("blorp"), turn("mmm"), turn("uh"), turn("what")]
    down, _ = await run_test(
        processor(agent, vader, failed_turns={"enabled": False}), frames_to_send=frames
    )
    assert not escalations(down)
    down, _ = await run_test(
        processor(agent, vader, failed_turns={"limit": 2}), frames_to_send=frames[:2]
    )
    assert escalations(down)[0].trigger == "failed_turns"


async def test_negative_sentiment(agent, vader):
    angry = turn(
        "this is ridiculous, you people are useless and I am furious", "insurance", Band.ACT, 0.9
    )
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[angry, *reply("We accept most plans.", "insurance")],
    )
    escalation = escalations(down)[0]
    assert escalation.trigger == "negative_sentiment"
    assert escalation.summary["sentiment"]["last"] <= -0.53
    assert spoken(down) == [agent.transfer.handoff_line]
    down, _ = await run_test(
        processor(agent, vader, negative_sentiment={"enabled": False}),
        frames_to_send=[angry, *reply("We accept most plans.", "insurance")],
    )
    assert not escalations(down) and spoken(down) == ["We accept most plans."]


async def test_pain_is_not_anger(agent, vader):
    calm = [
        turn("I have a terrible toothache", "book_appointment", Band.ACT, 0.9),
        turn("my tooth is broken", "book_appointment", Band.ACT, 0.9),
    ]
    down, _ = await run_test(
        processor(agent, vader, out_of_scope={"enabled": False}), frames_to_send=calm
    )
    assert not escalations(down)


async def test_out_of_scope_intent(agent, vader):
    emergency = agent.intent("emergency").response
    frames = [
        turn("I knocked out a tooth", "emergency", Band.ACT, 0.93),
        *reply(emergency, "emergency", hands_off=True),
    ]
    down, _ = await run_test(
        processor(agent, vader, negative_sentiment={"enabled": False}), frames_to_send=frames
    )
    assert escalations(down)[0].trigger == "out_of_scope"
    assert spoken(down) == [emergency]  # the dialogue's own line is the hand-off line
    down, _ = await run_test(
        processor(
            agent, vader, out_of_scope={"enabled": False}, negative_sentiment={"enabled": False}
        ),
        frames_to_send=frames,
    )
    assert not escalations(down) and spoken(down) == [agent.escalation.unavailable_line]


async def test_max_duration(agent, vader):
    down, _ = await run_test(
        processor(agent, vader, max_duration={"seconds": 0.2}), frames_to_send=[SleepFrame(0.4)]
    )
    escalation = escalations(down)[0]
    assert escalation.trigger == "max_duration"
    assert spoken(down) == [agent.transfer.handoff_line]
    down, _ = await run_test(
        processor(agent, vader, max_duration={"seconds": 0.2, "enabled": False}),
        frames_to_send=[SleepFrame(0.4)],
    )
    assert not escalations(down)


async def test_summary_carries_the_caller_record_and_authentication(agent, vader):
    record = CallerRecord(
        "cus_1",
        "Maria",
        "Garcia",
        "+15555550123",
        auth=Authentication(AuthStatus.VERIFIED, AuthMethod.PIN, 1),
        secrets={"pin": "4729"},
    )
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            CallerRecordFrame(record=record, status=PrefetchStatus.FOUND),
            turn("DTMF: 4729#", "dtmf_entry", Band.ACT, 1.0, DecisionPath.DTMF, digits="4729"),
            turn(
                "I want to move my appointment",
                "reschedule_appointment",
                Band.ACT,
                0.9,
                datetime={"spoken": "Friday at 3 PM"},
            ),
            turn("get me a real person", "talk_to_human", Band.ACT, 0.95),
            *reply(agent.transfer.handoff_line, "talk_to_human", True),
        ],
    )
    summary = escalations(down)[0].summary
    assert summary["authentication"] == {"status": "verified", "method": "pin", "attempts": 1}
    assert summary["caller"]["name"] == "Maria Garcia"
    assert "4729" not in str(summary)  # keyed digits and PINs never reach the summary
    assert summary["entities"]["datetime"]["spoken"] == "Friday at 3 PM"
    assert [i["intent"] for i in summary["intents"]] == [
        "dtmf_entry",
        "reschedule_appointment",
        "talk_to_human",
    ]


async def test_no_second_escalation_and_bot_lines_silenced_after_it(agent, vader):
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn("let me talk to a person"),
            *reply("Sorry?"),
            turn("hello?"),
            *reply("How can I help?"),
            TTSSpeakFrame("Are you still there?"),
        ],
    )
    assert len(escalations(down)) == 1
    assert spoken(down) == [agent.transfer.handoff_line]


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "escalation:\n  explicit_request:\n    intents: [nope]\n",
            "escalation.explicit_request.intents",
        ),
        ("escalation:\n  failed_turns:\n    limit: 0\n", "escalation.failed_turns.limit"),
        ("escalation:\n  negative_sentiment:\n    threshold: -3\n", "threshold"),
        ("escalation:\n  moon_phase: {}\n", "unknown key 'moon_phase'"),
        ("escalation:\n  max_duration:\n    seconds: soon\n", "escalation.max_duration.seconds"),
        ("escalation:\n  failed_turns:\n    enabled: maybe\n", "escalation.failed_turns.enabled"),
        ("transfer:\n  whisper: 3\n", "transfer.whisper"),
        ("verification:\n  required_for: [nope]\n", "verification.required_for"),
    ],
)
def test_bad_escalation_policy_names_the_key(tmp_path, yaml, message):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "name: x\ngreeting: hi\nintents:\n  talk_to_human:\n    examples: [a, b]\n"
        "    action: transfer\n" + yaml
    )
    with pytest.raises(AgentFileError) as info:
        load_agent(path)
    assert message in str(info.value)


def test_triggers_switch_off_with_false(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "name: x\ngreeting: hi\nintents:\n  a:\n    examples: [a, b]\n"
        "escalation:\n  negative_sentiment: false\n  max_duration:\n    seconds: 90\n"
    )
    config = load_agent(path).escalation
    assert not config.negative_sentiment.enabled and config.max_duration.seconds == 90
    assert config.explicit_request.enabled


# Issue 15: confirmed requests, emergencies, sentiment in noise


class FailingTransfer(FrameProcessor):
    """Stands in for the transfer processor: every transfer fails."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, EscalationFrame) and not isinstance(frame, TransferResultFrame):
            await self.push_frame(
                TransferResultFrame(trigger=frame.trigger, ok=False, error="busy"),
                FrameDirection.UPSTREAM,
            )


async def test_a_request_the_agent_serves_needs_more_negativity(agent, vader):
    # Callers describe their trouble in the request: served, not handed off.
    sick = "Hello, this is Kevin. I need to drop my appointment for tomorrow, I'm sick."
    assert -0.75 < vader.score(sick) <= -0.53
    for band in (Band.ACT, Band.CLARIFY):
        down, _ = await run_test(
            processor(agent, vader),
            frames_to_send=[turn(sick, "cancel_appointment", band, 0.8), *reply("Sure.")],
        )
        assert not escalations(down) and spoken(down) == ["Sure."]
    # The same words the agent could not place still read as a caller in trouble.
    down, _ = await run_test(processor(agent, vader), frames_to_send=[turn(sick)])
    assert escalations(down)[0].trigger == "negative_sentiment"
    # Frustration with the call itself is handed off whatever was asked.
    angry = "this is ridiculous, you people are useless and I am furious"
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[turn(angry, "insurance", Band.CLARIFY, 0.7), *reply("Insurance?")],
    )
    assert escalations(down)[0].trigger == "negative_sentiment"


def test_the_understood_bar_is_not_above_the_general_one():
    with pytest.raises(ValueError, match="understood_threshold"):
        SentimentTrigger(threshold=-0.5, understood_threshold=-0.4)


async def test_sentiment_ignores_words_the_recogniser_was_unsure_of(agent, vader):
    garbled = NLUResultFrame(
        text="terrible awful hate kill", intent=OUT_OF_SCOPE, band=Band.REPAIR, unsure=True
    )
    down, _ = await run_test(processor(agent, vader), frames_to_send=[garbled, *reply("Sorry?")])
    assert not escalations(down) and spoken(down) == ["Sorry?"]
    # The same words clearly heard (a request out of scope, not a repair) still count.
    heard = NLUResultFrame(
        text="terrible awful hate kill", intent=OUT_OF_SCOPE, band=Band.REPAIR, unsure=False
    )
    down, _ = await run_test(processor(agent, vader), frames_to_send=[heard])
    assert escalations(down)[0].trigger == "negative_sentiment"


async def test_no_hand_off_on_the_tone_of_words_too_doubtful_for_a_transfer(agent, vader):
    # A hand-off is a transfer: "price of a checkup" heard at 0.53 as "Prisoner tech up."
    # read -0.54 and was handed off (held-out call bench, 6 Dec 2026).
    doubt = HeardDoubt.with_bar(0.5)
    misheard = NLUResultFrame(
        text="Prisoner tech up.", intent=OUT_OF_SCOPE, band=Band.REPAIR, heard_confidence=0.53
    )
    assert vader.score(misheard.text) <= -0.53
    down, _ = await run_test(
        processor(agent, vader, doubt), frames_to_send=[misheard, *reply("Sorry?")]
    )
    assert not escalations(down) and spoken(down) == ["Sorry?"]
    # Heard as well as a transfer needs, the same tone hands off.
    heard = dataclasses.replace(misheard, heard_confidence=0.8)
    down, _ = await run_test(processor(agent, vader, doubt), frames_to_send=[heard])
    assert escalations(down)[0].trigger == "negative_sentiment"


async def test_a_confirmed_request_for_a_person_is_transferred(agent, vader):
    # "Did you want to speak to a person?" - "Yes.": the dialogue's transfer reply.
    line = agent.transfer.handoff_line
    down, _ = await run_test(
        processor(agent, vader),
        frames_to_send=[
            turn("Yes.", "affirm", Band.ACT, 0.99),
            *reply(line, "talk_to_human", hands_off=True),
        ],
    )
    escalation = escalations(down)[0]
    assert escalation.trigger == "explicit_request" and escalation.reason == "intent talk_to_human"
    assert spoken(down) == [line]


async def test_an_emergency_is_always_transferred_or_offered_a_callback(agent, vader, call_store):
    emergency = agent.intent("emergency").response
    recorder = CallRecorder(call_store, call_id="em1", transport="test")
    frames = [
        turn("I knocked out a tooth", "emergency", Band.ACT, 0.93),
        *reply(emergency, "emergency", hands_off=True),
        SleepFrame(0.05),
        # The transfer failed; the caller insists (confirmed after a clarify this time).
        turn("Yes.", "affirm", Band.ACT, 0.99),
        *reply(emergency, "emergency", hands_off=True),
        SleepFrame(0.05),
        # A transfer to a person for anything else is not retried after a failure.
        turn("a person", "talk_to_human", Band.ACT, 0.97),
        *reply(agent.transfer.handoff_line, "talk_to_human", hands_off=True),
    ]
    down, _ = await run_test(
        Pipeline(
            [processor(agent, vader, negative_sentiment={"enabled": False}), FailingTransfer()]
        ),
        frames_to_send=frames,
        observers=[recorder],
    )
    tried = [e for e in escalations(down) if not isinstance(e, TransferResultFrame)]
    assert [e.trigger for e in tried] == ["out_of_scope", "out_of_scope"]
    assert spoken(down) == [emergency, emergency, agent.escalation.unavailable_line]
    call_store.flush()
    assert call_store.get_call("em1")["outcome"] == "escalated"
