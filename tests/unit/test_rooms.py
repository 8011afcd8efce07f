"""Daily and LiveKit: construction and configuration (their servers cannot run here)."""

import jwt
import pytest
from pipecat.transports.daily.transport import DailyTransport
from pipecat.transports.livekit.transport import LiveKitTransport

from tests.fakes.daily import FakeDailyApi
from transports.rooms import (
    RoomJoin,
    create_daily_transport,
    create_livekit_transport,
    livekit_room,
)


def test_livekit_tokens_grant_the_room_and_mark_the_bot_as_agent():
    join = livekit_room(
        url="wss://lk.example.com", api_key="APIkey", api_secret="s" * 40, room="front-desk"
    )
    bot = jwt.decode(join.bot_token, "s" * 40, algorithms=["HS256"])
    user = jwt.decode(join.user_token, "s" * 40, algorithms=["HS256"])
    assert bot["video"]["room"] == user["video"]["room"] == "front-desk"
    assert bot["video"]["roomJoin"] and bot["video"].get("agent") is True
    assert not user["video"].get("agent")
    assert bot["iss"] == "APIkey"


def test_livekit_transport_is_built_for_audio_at_the_pipeline_rate():
    join = livekit_room(url="wss://lk.example.com", api_key="k", api_secret="s" * 40, room="r")
    transport = create_livekit_transport(join, sample_rate=16000)
    assert isinstance(transport, LiveKitTransport)
    params = transport._params
    assert params.audio_in_enabled and params.audio_out_enabled
    assert params.audio_in_sample_rate == params.audio_out_sample_rate == 16000


def test_daily_transport_is_built_for_the_room():
    join = RoomJoin(
        url="https://acme.daily.co/front-desk", user_token=None, room="front-desk", bot_token="tok"
    )
    transport = create_daily_transport(join, sample_rate=16000)
    assert isinstance(transport, DailyTransport)
    assert transport._params.audio_in_enabled and transport._params.audio_out_enabled


@pytest.mark.parametrize("transport", ["daily", "livekit"])
def test_room_transports_need_their_settings(transport):
    from bot.settings import Settings, SettingsError

    with pytest.raises(SettingsError):
        Settings.load({"CALLAGENT_TRANSPORT": transport})


@pytest.fixture
async def fake_daily_api():
    """Daily's REST API (rooms and meeting tokens) on loopback."""
    async with FakeDailyApi("daily-key") as api:
        yield api.base_url, api.seen


async def test_daily_room_is_created_with_owner_and_guest_tokens(fake_daily_api):
    import aiohttp

    from transports.rooms import create_daily_room

    url, seen = fake_daily_api
    async with aiohttp.ClientSession() as session:
        join = await create_daily_room(
            api_key="daily-key", api_url=url, room_url="", session=session
        )
    assert join.url == "https://acme.daily.co/cA3kq" and join.room == "cA3kq"
    assert join.bot_token == "tok-True" and join.user_token == "tok-False"
    assert [s[0] for s in seen] == ["rooms", "meeting-tokens", "meeting-tokens"]
    assert seen[1][2]["properties"]["room_name"] == "cA3kq"


async def test_daily_bad_key_is_a_clear_error(fake_daily_api):
    import aiohttp

    from transports.rooms import create_daily_room

    url, _ = fake_daily_api
    async with aiohttp.ClientSession() as session:
        with pytest.raises(Exception, match="401"):
            await create_daily_room(api_key="wrong", api_url=url, room_url="", session=session)
