"""One outbound call, played out as Twilio would: ring, answer, webhook, Media Stream, callee.

``initiated`` and ``ringing`` come first; a callee that never answers ends ``no-answer``
after ``Timeout`` (or ``busy``/``failed``). An answered call posts the answer ``Url``
(``CallStatus=in-progress``, ``AnsweredBy`` under synchronous AMD, which first waits for
the verdict, and with ``DetectMessageEnd`` for the machine's greeting to end), follows the
TwiML's ``<Connect><Stream>`` with the phone emulator (custom parameters and CallSid as
given) and lets the callee act; asynchronous AMD posts its verdict when it is decided. The
call ends when the callee hangs up, the agent closes the stream or hangs up over REST;
then ``completed`` with ``CallDuration``. Logs carry CallSids only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from loguru import logger

from integrations.speech.audio import PHONE_SAMPLE_RATE
from integrations.speech.base import SpeechRecognizer
from simulator.outbound.callbacks import CallbackSender, timestamp
from simulator.outbound.dialed_call import DialedCall
from simulator.phone import TwilioCallEmulator, parse_stream_twiml

API_VERSION = "2010-04-01"
QUEUE_S = 0.05
"""From queued to initiated (dialling starts)."""
SIP_CODES = {"completed": "200", "busy": "486", "no-answer": "487", "failed": "404"}


class Dialler(Protocol):
    """What a call needs from the dialler that placed it."""

    sender: CallbackSender
    auth_token: str
    transcriber: SpeechRecognizer | None


async def run_dialed_call(call: DialedCall, dialer: Dialler) -> None:
    """Play the call to its final status; never raises (a breakdown is ``call.error``)."""
    try:
        await _run(call, dialer)
    except asyncio.CancelledError:  # the fake stops: no more callbacks
        if not call.finished:
            call.set_status("canceled" if call.answered_at is None else "completed")
        raise
    except Exception as e:  # noqa: BLE001 - a broken simulated call ends as failed
        call.error = f"{type(e).__name__}: {e}"
        logger.debug(f"fake dial {call.sid} broke down: {type(e).__name__}")
        await _finish(call, dialer, "failed" if call.answered_at is None else "completed")
    finally:
        call.done = True


async def _run(call: DialedCall, dialer: Dialler) -> None:
    callee = call.callee
    prepared = asyncio.ensure_future(callee.prepare())  # synthesise while it rings
    await asyncio.sleep(QUEUE_S)
    call.set_status("initiated")
    await _status(call, dialer, "initiated")
    if callee.final_status == "failed" and not callee.answers:
        await _finish(call, dialer, "failed")
        return
    if callee.final_status != "busy":  # a busy line answers 486 before it rings
        call.set_status("ringing")
        await _status(call, dialer, "ringing")
    picks_up = callee.answers and callee.ring_s < call.timeout_s
    if not await _ring(call, min(callee.ring_s, call.timeout_s)):
        await _finish(call, dialer, "canceled")
        return
    if not picks_up:
        unanswered = "no-answer" if callee.ring_s >= call.timeout_s else callee.final_status
        await _finish(call, dialer, unanswered)
        return
    await prepared
    await _answer(call, dialer)


async def _ring(call: DialedCall, seconds: float) -> bool:
    """Ring for ``seconds``; False when the dialler hung up first."""
    try:
        await asyncio.wait_for(call.hang_up_requested.wait(), seconds)
    except TimeoutError:
        return True
    return False


async def _answer(call: DialedCall, dialer: Dialler) -> None:
    callee = call.callee
    call.answered_at = time.monotonic()
    call.set_status("in-progress")
    amd = (
        callee.amd(call.machine_detection == "DetectMessageEnd") if call.machine_detection else None
    )
    if amd is not None:
        limit = float(call.form.get("MachineDetectionTimeout") or 30)
        if amd.after_s > limit:
            amd = type(amd)("unknown", limit)
    await _status(call, dialer, "answered")
    greeting_end: float | None = None
    if amd is not None and not call.async_amd:
        # Synchronous AMD: the answer URL waits for the verdict (and, for a machine under
        # DetectMessageEnd, for its greeting to end), so the stream misses what was said.
        await asyncio.sleep(amd.after_s)
        call.answered_by, call.amd_after_s = amd.answered_by, amd.after_s
        call.record.answered_by = amd.answered_by
        if callee.greeting_s() and amd.answered_by.startswith("machine_end"):
            greeting_end = call.answered_at + callee.greeting_s()
    twiml = await _fetch_twiml(call, dialer)
    if twiml is None:
        await _finish(call, dialer, "completed")
        return
    instructions = parse_stream_twiml(twiml)
    emulator = TwilioCallEmulator(
        instructions.stream_url,
        call_sid=call.sid,
        account_sid=call.account_sid,
        custom_parameters=instructions.parameters,
        auth_token=dialer.auth_token,
        from_number=call.from_number,
        to_number=call.to,
    )
    await emulator.connect()
    call.emulator = emulator
    tasks = [asyncio.ensure_future(_hang_up_on_request(call, emulator))]
    if amd is not None and call.async_amd:
        tasks.append(asyncio.ensure_future(_async_amd(call, dialer, amd.answered_by, amd.after_s)))
    try:
        offset = (
            None if greeting_end is None else greeting_end - (time.monotonic() - emulator.now())
        )
        await callee.play(emulator, call.log, greeting_ended_s=offset)
        if not emulator.closed:
            await emulator.hang_up()
        if call.log.hung_up_by is None:
            call.log.hung_up_by = "callee" if emulator.ended_by == "caller" else "agent"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await _finish(call, dialer, "completed")
    await _transcribe(call, dialer, emulator)


async def _fetch_twiml(call: DialedCall, dialer: Dialler) -> str | None:
    """The answer URL's TwiML (or the create's ``Twiml``); None unless it streams."""
    if call.form.get("Twiml"):
        call.twiml = call.form["Twiml"]
    else:
        params = _base_params(call)
        params["CallStatus"] = "in-progress"
        if call.answered_by is not None:
            params["AnsweredBy"] = call.answered_by
        method = call.form.get("Method", "POST")
        delivery = await dialer.sender.send("answer", call.form["Url"], params, method)
        call.deliveries.append(delivery)
        if not delivery.ok:
            call.error = f"answer URL: HTTP {delivery.status or delivery.error}"
            return None
        call.twiml = delivery.body
    try:
        parse_stream_twiml(call.twiml)
    except (ValueError, SyntaxError):
        return None  # e.g. <Hangup/>: nothing to stream
    return call.twiml


async def _hang_up_on_request(call: DialedCall, emulator: TwilioCallEmulator) -> None:
    """A REST hang-up ends the stream, as Twilio does."""
    await call.hang_up_requested.wait()
    if not emulator.closed:
        call.log.hung_up_by = call.log.hung_up_by or "agent"
        await emulator.remote_hang_up()


async def _async_amd(call: DialedCall, dialer: Dialler, answered_by: str, after_s: float) -> None:
    assert call.answered_at is not None
    await asyncio.sleep(max(0.0, call.answered_at + after_s - time.monotonic()))
    call.answered_by, call.amd_after_s = answered_by, after_s
    call.record.answered_by = answered_by
    url = call.form.get("AsyncAmdStatusCallback")
    if not url:
        return
    params = {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "AnsweredBy": answered_by,
        "MachineDetectionDuration": str(int(after_s * 1000)),
    }
    method = call.form.get("AsyncAmdStatusCallbackMethod", "POST")
    call.deliveries.append(await dialer.sender.send("amd", url, params, method))


def _base_params(call: DialedCall) -> dict[str, str]:
    return {
        "AccountSid": call.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call.sid,
        "Called": call.to,
        "Caller": call.from_number,
        "Direction": "outbound-api",
        "From": call.from_number,
        "To": call.to,
    }


async def _status(call: DialedCall, dialer: Dialler, event: str) -> None:
    """Send the status callback for ``event`` if it was asked for."""
    url = call.form.get("StatusCallback")
    if not url or event not in call.status_events:
        return
    params = _base_params(call)
    params.update(
        CallStatus=call.status,
        CallbackSource="call-progress-events",
        SequenceNumber=str(call.sequence),
        Timestamp=timestamp(),
    )
    call.sequence += 1
    if call.status in SIP_CODES:
        params["SipResponseCode"] = SIP_CODES[call.status]
    if event == "completed":
        params["CallDuration"] = str(call.duration_s)
        params["Duration"] = str(-(-call.duration_s // 60))
    if call.answered_by is not None and call.machine_detection:
        params["AnsweredBy"] = call.answered_by
    method = call.form.get("StatusCallbackMethod", "POST")
    call.deliveries.append(await dialer.sender.send("status", url, params, method))


async def _finish(call: DialedCall, dialer: Dialler, status: str) -> None:
    if call.finished:
        return
    call.set_status(status)
    await _status(call, dialer, "completed")


async def _transcribe(call: DialedCall, dialer: Dialler, emulator: TwilioCallEmulator) -> None:
    """Transcribe what the callee heard, one bot utterance at a time.

    A recogniser made for turns drops words from a whole call's audio given at once.
    """
    transcriber = dialer.transcriber
    if transcriber is None:
        return
    texts: list[str] = []
    for start, end in emulator.bot_utterances():
        pcm = emulator.heard_audio(max(0.0, start - 0.1), end + 0.1)
        texts.append(await asyncio.to_thread(transcriber.transcribe, pcm, PHONE_SAMPLE_RATE))
    call.heard_text = " ".join(t.strip() for t in texts if t.strip())
    start = call.log.message_start_s
    if start is not None:
        message = emulator.heard_audio(max(0.0, start - 0.1))
        call.message_text = await asyncio.to_thread(
            transcriber.transcribe, message, PHONE_SAMPLE_RATE
        )
