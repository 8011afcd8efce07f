"""The per-call event stream: one event per change of who is speaking."""

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

from processors.call_events import CallEventObserver


def test_speaking_frames_broadcast_both_ways_make_one_event_each():
    published: list[str] = []
    observer = CallEventObserver(lambda kind, _data: published.append(kind))
    # Pipecat broadcasts each speaking frame upstream and downstream: two frames, one change.
    frames = [
        BotStartedSpeakingFrame(),
        BotStartedSpeakingFrame(),
        BotStoppedSpeakingFrame(),
        BotStoppedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
        BotStartedSpeakingFrame(),
    ]
    for frame in frames:
        event = observer.event_for(frame)
        if event is not None:
            published.append(event[0])
    assert published == [
        "bot_started",
        "bot_stopped",
        "user_started",
        "user_stopped",
        "bot_started",
    ]
