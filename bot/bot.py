"""Pipecat runner entry: ``async def bot(runner_args)``.

Lets Pipecat's development runner (``python -m bot.bot -t webrtc|daily|livekit|twilio``)
and Pipecat Cloud run the same agent the ``callagent serve`` server runs.
"""

from __future__ import annotations

from functools import cache

from pipecat.runner.types import (
    DailyRunnerArguments,
    LiveKitRunnerArguments,
    RunnerArguments,
    SmallWebRTCRunnerArguments,
    WebSocketRunnerArguments,
)
from pipecat.runner.utils import parse_telephony_websocket

from bot.call.pipeline import run_call
from bot.call.runtime import Runtime
from bot.call.startup import load_runtime
from bot.call.transport import (
    daily_call,
    livekit_call,
    public_base_url,
    twilio_call,
    twilio_stream_allowed,
    webrtc_call,
)
from bot.settings import Settings
from transports import rooms, twilio


@cache
def shared_runtime() -> Runtime:
    """The process's runtime (models load on the first call and are reused)."""
    return load_runtime(Settings.load())


async def bot(runner_args: RunnerArguments) -> None:
    """Run one call on whichever transport the runner connected."""
    runtime = shared_runtime()
    settings = runtime.settings
    if isinstance(runner_args, SmallWebRTCRunnerArguments):
        call = webrtc_call(runner_args.webrtc_connection)
    elif isinstance(runner_args, DailyRunnerArguments):
        join = rooms.RoomJoin(runner_args.room_url, None, "", runner_args.token)
        call = daily_call(join, caller=_dialin_caller(runner_args.body))
    elif isinstance(runner_args, LiveKitRunnerArguments):
        join = rooms.RoomJoin(runner_args.url, None, runner_args.room_name, runner_args.token)
        call = livekit_call(join)
    elif isinstance(runner_args, WebSocketRunnerArguments):
        websocket = runner_args.websocket
        public_url = public_base_url(settings, websocket)
        if not twilio_stream_allowed(settings, websocket, public_url):
            await websocket.close(code=1008)
            return
        _, telephony = await parse_telephony_websocket(websocket)
        parameters = {str(k): str(v) for k, v in dict(telephony.body or {}).items()}
        if telephony.from_number:
            parameters.setdefault("From", telephony.from_number)
        start = twilio.TwilioStreamStart(
            stream_sid=telephony.stream_id or "",
            call_sid=telephony.call_id or "",
            account_sid=settings.twilio_account_sid,
            custom_parameters=parameters,
        )
        call = twilio_call(websocket, start, settings, public_url=public_url)
    else:
        raise ValueError(f"unsupported runner arguments: {type(runner_args).__name__}")
    await run_call(call.transport, call.spec, runtime)


def _dialin_caller(body: object) -> str | None:
    """The caller id of a Daily dial-in call (Pipecat Cloud's ``dialin_settings.From``)."""
    settings = body.get("dialin_settings") if isinstance(body, dict) else None
    caller = settings.get("From") or settings.get("from") if isinstance(settings, dict) else None
    return str(caller) if caller else None


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
