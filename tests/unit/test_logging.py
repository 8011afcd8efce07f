"""Log lines carry the call id through loguru's context; text and JSON formats show it."""

import asyncio
import json
import sys
from types import SimpleNamespace
from typing import Any, cast

import pytest
from loguru import logger
from pipecat.frames.frames import EndFrame, Frame, TextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.call import pipeline as call_pipeline
from bot.call.live_calls import LiveCalls
from bot.call.pipeline import CallSpec, run_call
from bot.cli import configure_logging


class LogProbe(FrameProcessor):
    """Logs a text frame where it arrives, and again from a task it starts (as processors do)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            call_id = frame.text  # the test sends each call's own id, never caller words
            logger.info(f"probe saw {call_id}")
            await self.create_task(self._later(call_id), "later")
        await self.push_frame(frame, direction)

    async def _later(self, text: str) -> None:
        await asyncio.sleep(0)
        logger.info(f"probe task for {text}")


@pytest.fixture
def records():
    seen: list[Any] = []
    sink = logger.add(lambda m: seen.append(m.record), level="INFO", format="{message}")
    yield seen
    logger.remove(sink)


async def test_run_call_puts_the_call_id_on_lines_from_pipecat_tasks(monkeypatch, records):
    pending: list[asyncio.Future] = []

    def build_worker(_transport, spec, _runtime, _observers=()):
        worker = PipelineWorker(Pipeline([LogProbe()]), check_dangling_tasks=False)
        # queued now, handled once the runner starts the worker (inside the call's context)
        frames = asyncio.ensure_future(worker.queue_frames([TextFrame(spec.call_id), EndFrame()]))
        pending.append(frames)
        return worker

    monkeypatch.setattr(call_pipeline, "build_worker", build_worker)
    runtime: Any = SimpleNamespace(active_calls=0, live=LiveCalls())  # run_call counts calls on it
    specs = [CallSpec("webrtc", 16000, 16000, call_id=f"call{n}") for n in range(2)]
    await asyncio.gather(*(run_call(cast(Any, None), spec, runtime) for spec in specs))
    await asyncio.gather(*pending)

    for spec in specs:
        mine = [r for r in records if r["extra"].get("call_id") == spec.call_id]
        messages = [r["message"] for r in mine]
        assert f"probe saw {spec.call_id}" in messages  # in a processor's input task
        assert f"probe task for {spec.call_id}" in messages  # in a task the processor made
        assert messages[0].startswith("call started") and messages[-1] == "call ended"
        assert all(spec.call_id in m for m in messages if m.startswith("probe"))
    assert not [r for r in records if r["message"].startswith("probe") and not r["extra"]]


def test_text_and_json_formats_show_the_call_id(capsys):
    try:
        configure_logging("info", "text")
        with logger.contextualize(call_id="abc123"):
            logger.info("client connected")
        logger.info("server started")
        text = capsys.readouterr().err.splitlines()
        assert text[0].endswith("call abc123 | client connected")
        assert text[1].endswith("- server started") and "call " not in text[1]

        configure_logging("INFO", "json")
        with logger.contextualize(call_id="abc123"):
            logger.info("client connected")
        line = json.loads(capsys.readouterr().err.splitlines()[0])
        assert line["record"]["message"] == "client connected"
        assert line["record"]["extra"] == {"call_id": "abc123"}
        assert line["record"]["level"]["name"] == "INFO"
    finally:
        logger.remove()
        logger.add(sys.stderr)
