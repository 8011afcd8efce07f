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
from pipecat.transports.base_transport import BaseTransport

from bot.call.pipeline import CallSpec, run_call
from bot.call.runtime import Runtime
from bot.call.startup import load_runtime
from bot.settings import Settings
from transports import rooms, twilio, webrtc


@cache
def shared_runtime() -> Runtime:
    """The process's runtime (models load on the first call and are reused)."""
    return load_runtime(Settings.load())


async def bot(runner_args: RunnerArguments) -> None:
    """Run one call on whichever transport the runner connected."""
    runtime = shared_runtime()
    settings = runtime.settings
    transport: BaseTransport
    if isinstance(runner_args, SmallWebRTCRunnerArguments):
        spec = CallSpec("webrtc", 16000, 24000)
        transport = webrtc.create_webrtc_transport(runner_args.webrtc_connection)
    elif isinstance(runner_args, DailyRunnerArguments):
        spec = CallSpec("daily", 16000, 16000, caller=_dialin_caller(runner_args.body))
        join = rooms.RoomJoin(runner_args.room_url, None, "", runner_args.token)
        transport = rooms.create_daily_transport(join)
    elif isinstance(runner_args, LiveKitRunnerArguments):
        spec = CallSpec("livekit", 16000, 16000)
        join = rooms.RoomJoin(runner_args.url, None, runner_args.room_name, runner_args.token)
        transport = rooms.create_livekit_transport(join)
    elif isinstance(runner_args, WebSocketRunnerArguments):
        _, call = await parse_telephony_websocket(runner_args.websocket)
        start = twilio.TwilioStreamStart(
            stream_sid=call.stream_id or "",
            call_sid=call.call_id or "",
            account_sid=settings.twilio_account_sid,
            custom_parameters=dict(call.body or {}),
        )
        spec = CallSpec(
            "twilio",
            8000,
            8000,
            caller=call.from_number,
            provider_call_id=call.call_id,
            public_url=settings.public_url,
        )
        transport = twilio.create_twilio_transport(
            runner_args.websocket,
            start,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            rest_base_url=settings.twilio_api_base_url,
            hang_up=settings.twilio_hang_up_enabled,
        )
    else:
        raise ValueError(f"unsupported runner arguments: {type(runner_args).__name__}")
    await run_call(transport, spec, runtime)


def _dialin_caller(body: object) -> str | None:
    """The caller id of a Daily dial-in call (Pipecat Cloud's ``dialin_settings.From``)."""
    settings = body.get("dialin_settings") if isinstance(body, dict) else None
    caller = settings.get("From") or settings.get("from") if isinstance(settings, dict) else None
    return str(caller) if caller else None


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
