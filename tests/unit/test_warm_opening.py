"""An outbound call readies its opening's speech as it connects (bot/call/outbound.py).

The opening greets every contact by name, so the TTS's clause cache never holds it; left
to the moment the opening goes out, its first clause's synthesis sits between the
callee's "hello" and the first audio they hear.
"""

import asyncio

from bot.agent import load_agent
from bot.call.outbound import warm_opening
from bot.call.runtime import Runtime
from bot.settings import REFERENCE_AGENT, Settings
from integrations.nlu.entities import EntityExtractor
from integrations.speech.cache import CachingSynthesizer
from integrations.speech.tts import split_clauses
from processors.outbound_call import OutboundCall
from tests.fakes.classifier import ScriptedClassifier
from tests.fakes.speech import ScriptedSynthesizer

REMINDERS = REFERENCE_AGENT.with_name("appointment_reminders.yaml")
CONTACT = {"first_name": "Kalo", "appointment": "Friday at 10 am"}


def runtime(synthesizer: object, env: dict[str, str] | None = None) -> Runtime:
    return Runtime(
        Settings.load(env or {}),
        load_agent(REMINDERS),
        None,
        synthesizer,  # type: ignore[arg-type]
        ScriptedClassifier(),
        EntityExtractor(),
        None,
    )


def call(variables: dict[str, str]) -> OutboundCall:
    return OutboundCall(attempt_id="at_1", to="+15555551000", variables=variables)


def test_the_opening_for_this_contact_is_in_the_tts_cache_once_warmed():
    engine = ScriptedSynthesizer(sample_rate=22050)
    cache = CachingSynthesizer(engine)
    rt = runtime(cache)
    opening = load_agent(REMINDERS).outbound.render_opening(CONTACT)  # type: ignore[union-attr]

    rendered = asyncio.run(warm_opening(rt, call(CONTACT)))

    clauses = split_clauses(opening)
    assert clauses[0] == "Hi Kalo,"
    assert rendered == len(clauses)
    assert all(cache.cached(clause, 22050) is not None for clause in clauses)
    engine.texts.clear()
    assert asyncio.run(warm_opening(rt, call(CONTACT))) == 0  # already there: not again
    assert engine.texts == []


def test_nothing_is_rendered_inbound_without_a_cache_or_with_a_variable_missing():
    engine = ScriptedSynthesizer()
    rt = runtime(CachingSynthesizer(engine))
    assert asyncio.run(warm_opening(rt, None)) == 0
    assert asyncio.run(warm_opening(rt, call({"first_name": "Kalo"}))) == 0
    assert asyncio.run(warm_opening(runtime(engine), call(CONTACT))) == 0  # no cache to fill
    assert engine.texts == []
