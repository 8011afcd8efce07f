"""Assembles and runs one call's pipeline on any transport.

transport.input → STT → user aggregator (Silero VAD + Smart Turn; barge-in)
→ NLU router → dialogue → [LLM] → TTS → transport.output → assistant aggregator,
with the latency observer beside it. Every call gets its own processors and
state on top of the runtime's shared models, and is torn down at hang-up.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import EndWorkerFrame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.observers.user_bot_latency_observer import LatencyBreakdown, UserBotLatencyObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.dtmf_aggregator import DTMFAggregator
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.empty_user_turn import EmptyUserTurnConfig
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from bot.call.handoff import make_handoff_processors
from bot.call.live_calls import LiveCall
from bot.call.nlu import make_completeness_check, make_misheard_answer_check, make_nlu_router
from bot.call.outbound import make_answering_machine, warm_opening
from bot.call.runtime import Runtime
from bot.call.services import (
    make_llm,
    make_stt,
    make_tts,
    make_turn_analyzer,
    make_vad_analyzer,
    make_whole_turn,
    optional,
)
from integrations.speech.nbest import TurnReadings
from processors.action_hold import ActionWithdrawal
from processors.agent_definition import AgentDefinition
from processors.audio_stop import BotAudioStop, BotSpeakingStop, CallerAudioStop
from processors.barge_in import BackchannelFilter, ReplyProgressTracker
from processors.bot_question import bot_asked_yes_no
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.fragment_join import FragmentJoiner
from processors.frames import GreetingFrame
from processors.llm_fallback import LLMFailureApology
from processors.observer_group import AudioBlindWorkerObserver, ObserverGroup
from processors.outbound_call import OutboundCall
from processors.outbound_script import OutboundScript
from processors.segment_turn_stop import SegmentTranscriptTurnStopStrategy
from processors.semantic_turn import SemanticCompletionStopStrategy
from processors.turn_hold import TurnHoldPolicy
from processors.turn_latency import stages_from_breakdown
from transports.sip.transport import SipTransport

DTMF_TIMEOUT_SECS = 2.0
IDLE_PROMPT = "Are you still there?"
IDLE_PROMPTS_BEFORE_HANG_UP = 2


@dataclass
class CallSpec:
    """What one call is: where it came from and at which audio rates it runs.

    Parameters:
        transport_kind: ``twilio``, ``sip``, ``webrtc``, ``daily`` or ``livekit``.
        sample_rate_in: Pipeline input rate (8000 on phone calls).
        sample_rate_out: Pipeline output rate (TTS renders at this rate).
        caller: The caller's identity (phone number or client id). Never logged. On an
            outbound call the CRM looks the callee up by ``outbound.to`` instead.
        call_id: Our id for the call (logs carry this).
        direction: ``inbound`` or ``outbound`` (for the call record).
        provider_call_id: The provider's id of the live call (Twilio ``CallSid``, the SIP
            Call-ID); transfers address it.
        public_url: The public base URL this call reached us at (transfer callbacks).
        agent: Which of the server's agents takes the call (the agent file's stem; None: the
            default agent).
        outbound: The outbound call this is (None: an inbound call).
    """

    transport_kind: str
    sample_rate_in: int
    sample_rate_out: int
    caller: str | None = None
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    direction: str = "inbound"
    provider_call_id: str | None = None
    public_url: str = ""
    agent: str | None = None
    outbound: OutboundCall | None = None


UNHEARD_TURN_NOTE = "The caller spoke, but nothing they said was recognised."


class AudioBlindPipelineWorker(PipelineWorker):
    """A pipeline worker whose observers are never handed audio or processing events.

    For calls whose observers are all first-push observers that read neither (the phone
    path: no RTVI observer, which watches audio levels). See
    :class:`processors.observer_group.AudioBlindWorkerObserver`.
    """

    def __init__(self, pipeline: Pipeline, **kwargs: Any):
        """As :class:`PipelineWorker`; then its observer hub is swapped for an audio-blind one."""
        super().__init__(pipeline, **kwargs)
        # Pipecat's hub holds the observers given plus its own (the idle monitor's); the
        # same observers move to the new hub before anything is set up.
        observers = self._observer._observers  # pyright: ignore[reportPrivateUsage]
        self._observer = AudioBlindWorkerObserver(observers=list(observers))


def outbound_script(agent: AgentDefinition, call: OutboundCall | None) -> OutboundScript | None:
    """The dialogue's script for a call the agent placed (None: inbound, or no outbound section)."""
    if call is None or agent.outbound is None:
        return None
    return OutboundScript(agent.outbound, call.variables)


def line_on_hold(transport: BaseTransport) -> bool:
    """The far end has put the call on hold (a SIP re-INVITE): its silence is not the caller's."""
    return isinstance(transport, SipTransport) and transport.call.media.held


def _busy_from(runtime: Runtime, calls: int) -> Callable[[], bool] | None:
    """True while ``calls`` or more calls run on the host (None when ``calls`` is 0: never)."""
    return (lambda: runtime.host_calls >= calls) if calls > 0 else None


def build_worker(
    transport: BaseTransport,
    spec: CallSpec,
    runtime: Runtime,
    observers: Sequence[BaseObserver] = (),
) -> PipelineWorker:
    """Build the pipeline worker for one call (nothing runs until it is started).

    ``observers`` join the call's own (e.g. the outbound attempt's, ``bot/outbound``).

    Raises:
        ValueError: the spec names an agent this server does not serve.
    """
    runtime = runtime.for_agent(spec.agent)  # the agent's view: its definition, classifiers
    agent = runtime.agent
    # the party the call is with: on a call we placed, the number we called
    party = spec.outbound.to if spec.outbound is not None else spec.caller
    llm = make_llm(runtime)
    persona = agent.persona
    if spec.outbound is not None and agent.outbound is not None:
        persona += f" You placed this call: {agent.outbound.purpose}"  # the LLM knows why
    context = LLMContext(messages=[{"role": "system", "content": persona}])
    is_complete = make_completeness_check(runtime)  # barge-in: is a turn over the bot a request
    question_pending = bot_asked_yes_no(context)
    # the aggregator passes on a turn's text only: the NLU finds its N-best readings here
    readings = TurnReadings()
    # turn-taking: a yes or a no is a whole turn only when the bot asked for one; a question
    # the agent only answers, read surely on another reading, is whole too
    turn_complete = make_completeness_check(
        runtime, answers_expected=question_pending, readings=readings
    )
    settings = runtime.settings
    # hear the caller out: openers and preambles wait for a longer pause (issue 15)
    hold = TurnHoldPolicy(
        understood=turn_complete,
        question_pending=question_pending,
        garbled_below=settings.asr_unsure_confidence,
        misheard_answer=make_misheard_answer_check(runtime, readings),
    )
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=make_vad_analyzer(runtime),
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy(enable_interruptions=True)],
                stop=[
                    SegmentTranscriptTurnStopStrategy(
                        turn_analyzer=make_turn_analyzer(runtime),
                        second_look_s=settings.turn_second_look_secs,
                        model_after_transcript=_busy_from(
                            runtime, settings.turn_model_after_transcript_from_calls
                        ),
                        hold=hold,
                    ),
                    SemanticCompletionStopStrategy(
                        turn_complete,
                        grace_secs=settings.semantic_turn_grace_secs,
                        hold=hold,
                    ),
                ],
            ),
            user_idle_timeout=10,
            # A turn with voice but no transcript reaches the NLU router as a context
            # frame ending in this note; the router decides which empty turns to answer
            # (long enough voice) and how many in a row.
            empty_user_turn=EmptyUserTurnConfig(
                idle_prompt=UNHEARD_TURN_NOTE, max_consecutive_recoveries=sys.maxsize
            ),
        ),
    )
    script = outbound_script(agent, spec.outbound)
    policy = DialoguePolicy(agent, llm_available=llm is not None, script=script)
    handoff = make_handoff_processors(
        runtime,
        call_id=spec.call_id,
        transport_kind=spec.transport_kind,
        caller=party,
        transport=transport,
        context=context,
        provider_call_id=spec.provider_call_id,
        public_url=spec.public_url,
    )
    pipeline = Pipeline(
        optional(
            transport.input(),
            make_stt(runtime, readings),
            # outbound: person or machine; the opening after their "hello"; voicemail
            make_answering_machine(runtime, spec),
            user_aggregator,
            # a turn the VAD split: its text from one transcription of all its audio
            make_whole_turn(runtime, readings),
            CallerAudioStop(),  # nothing below listens to the caller's audio (see the module)
            DTMFAggregator(timeout=DTMF_TIMEOUT_SECS),  # keyed digits → "DTMF: ..." turns
            # "mhm" while the bot talks: it goes on
            BackchannelFilter(call_id=spec.call_id, understood=is_complete),
            # the caller went on after a fragment the bot began to answer: one turn
            FragmentJoiner(is_fragment=hold.is_fragment),
            # ... or over the line of a hand-off or goodbye decided on its turn: withdrawn
            ActionWithdrawal(),
            make_nlu_router(runtime, readings, opening_asks=script is not None),
            *handoff.before_dialogue(),  # CRM prefetch, caller verification, callback offer
            DialogueProcessor(policy),
            LLMFailureApology() if llm else None,
            llm,
            # escalation, action hold, transfer (hold music, screen pop)
            *handoff.after_dialogue(),
            make_tts(runtime),
            BotSpeakingStop(),  # the output's heartbeats go no further up
            transport.output(),
            BotAudioStop(),  # nothing below listens to the bot's audio
            ReplyProgressTracker(call_id=spec.call_id),  # which clause a barge-in cut
            assistant_aggregator,
        )
    )
    latency = UserBotLatencyObserver()
    # RTVI speaks to the browser page; a phone has no use for it (its processor and
    # observer would look at every frame of the call)
    rtvi = spec.transport_kind not in ("twilio", "sip")
    recorder = (
        runtime.records.recorder(
            call_id=spec.call_id,
            transport=spec.transport_kind,
            caller=party,
            direction=spec.direction,
            agent=agent.name,
            provider_call_id=spec.provider_call_id,
            outbound=spec.outbound,
        )
        if runtime.records is not None
        else None
    )
    events = (
        runtime.call_events.observer(spec.call_id, spec.provider_call_id)
        if runtime.call_events is not None
        else None
    )
    worker_class = PipelineWorker if rtvi else AudioBlindPipelineWorker
    worker = worker_class(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=spec.sample_rate_in,
            audio_out_sample_rate=spec.sample_rate_out,
            enable_metrics=True,
            enable_usage_metrics=True,
        ),
        # one queue hop per frame event for all three (see processors/observer_group.py)
        observers=[
            ObserverGroup(
                [o for o in (latency, recorder, events) if o is not None] + list(observers)
            )
        ],
        enable_turn_tracking=False,  # feeds tracing only, which is off
        enable_rtvi=rtvi,
        idle_timeout_secs=600,
    )

    @latency.event_handler("on_latency_breakdown")
    async def on_latency_breakdown(_observer: UserBotLatencyObserver, breakdown: LatencyBreakdown):
        stages = stages_from_breakdown(breakdown)
        total_ms = round(breakdown.total_secs * 1000, 1)
        kind = "greeting" if breakdown.user_turn_start_time is None else "turn"
        logger.info(f"{kind} latency {total_ms} ms {stages}")
        if recorder is not None:
            recorder.add_latency(total_ms, stages, kind)
        if events is not None:
            events.publish("latency", {"kind": kind, "total_ms": total_ms, "stages_ms": stages})
        if rtvi:
            await worker.rtvi.send_server_message(
                {"type": "latency", "kind": kind, "total_ms": total_ms, "stages_ms": stages}
            )

    idle_prompts = 0

    @user_aggregator.event_handler("on_user_turn_idle")
    async def on_user_turn_idle(_aggregator: object) -> None:
        nonlocal idle_prompts
        if line_on_hold(transport):
            idle_prompts = 0  # the far end's hold is not a silent caller: wait for it
            return
        idle_prompts += 1
        if idle_prompts > IDLE_PROMPTS_BEFORE_HANG_UP:
            logger.info("caller silent, ending the call")
            await worker.queue_frames(
                [
                    TTSSpeakFrame("I'll hang up now. Feel free to call back any time. Goodbye!"),
                    EndWorkerFrame(reason="caller silent"),
                ]
            )
        else:
            await worker.queue_frame(TTSSpeakFrame(IDLE_PROMPT))

    @user_aggregator.event_handler("on_user_turn_started")
    async def on_user_turn_started(_aggregator: object, _strategy: object) -> None:
        nonlocal idle_prompts
        idle_prompts = 0

    warming: set[asyncio.Task[int]] = set()

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: BaseTransport, _client: object) -> None:
        logger.info(f"{spec.transport_kind} client connected")
        if spec.outbound is None:  # outbound: the answering-machine detector opens
            await worker.queue_frame(GreetingFrame())  # by name if the CRM already answered
        else:  # the opening's speech, ready by the end of the callee's "hello"
            task = asyncio.create_task(warm_opening(runtime, spec.outbound))
            warming.add(task)
            task.add_done_callback(warming.discard)

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: BaseTransport, _client: object) -> None:
        logger.info("client disconnected")
        await worker.cancel()

    return worker


def live_call(spec: CallSpec, transport: BaseTransport, worker: PipelineWorker) -> LiveCall:
    """The entry of ``runtime.live`` a call running as ``spec`` keeps while it runs."""
    return LiveCall(
        spec.call_id,
        spec.agent,
        spec.transport_kind,
        spec.provider_call_id,
        transport,
        worker,
        spec.outbound.attempt_id if spec.outbound is not None else None,
    )


async def run_call(
    transport: BaseTransport,
    spec: CallSpec,
    runtime: Runtime,
    *,
    observers: Sequence[BaseObserver] = (),
    on_worker: Callable[[PipelineWorker], None] | None = None,
) -> None:
    """Run one call until it ends (hang-up, goodbye, or the caller leaving).

    ``observers`` join the call's own; ``on_worker`` is handed the call's worker before it
    runs (e.g. to queue provider frames into the live call).

    Everything logged while the call runs carries its id (``extra["call_id"]``): the
    context is entered before the worker's tasks exist, and asyncio copies it into every
    task created inside it (Pipecat's task manager included).
    """
    with logger.contextualize(call_id=spec.call_id):
        worker = build_worker(transport, spec, runtime, observers)
        if on_worker is not None:
            on_worker(worker)
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(worker)
        logger.info(f"call started ({spec.transport_kind}, {spec.sample_rate_in} Hz)")
        runtime.active_calls += 1
        runtime.live.add(live_call(spec, transport, worker))
        try:
            await runner.run()
        finally:
            runtime.live.remove(spec.call_id)
            runtime.active_calls -= 1
            logger.info("call ended")
