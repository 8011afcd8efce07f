"""Request sets: caller requests for one agent, phrased as callers talk, with the intended intent.

A request set is *not* the agent's own examples: it is what the agent is measured on
(``callagent bench understanding``), so nobody tunes the agent or the NLU on the held-out
set. A development set, tuned on freely, lives beside it in a file of its own. File format::

    agent: ../../bot/agents/dental_front_desk.yaml   # relative to this file
    requests:
      - text: Um, yeah, hi. I'd like to set up a cleaning for sometime next week.
        intent: book_appointment   # an intent, kb:<id> (knowledge-base entry) or out_of_scope
        style: filler_first        # filler_first, two_sentences, terse, dates_names or plain
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.yaml_schema import load_yaml, problems, yaml_problem

OUT_OF_SCOPE = "out_of_scope"
Style = Literal["filler_first", "two_sentences", "terse", "dates_names", "plain"]


class RequestSetError(ValueError):
    """A request set file is wrong; the message names the file, line, field and fix."""


class CallerRequest(BaseModel):
    """One thing a caller asks, and what the agent should understand by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    intent: str = Field(min_length=1)
    style: Style = "plain"


class RequestSetFile(BaseModel):
    """The file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str
    requests: list[CallerRequest] = Field(min_length=1)


class RequestSet(BaseModel):
    """A loaded request set: the agent file it is for (resolved) and its requests."""

    model_config = ConfigDict(frozen=True)

    path: Path
    agent_file: Path
    requests: list[CallerRequest]

    def intents(self) -> list[str]:
        """The intents the set asks for, in first-seen order."""
        return list(dict.fromkeys(r.intent for r in self.requests))


def load_request_set(path: Path) -> RequestSet:
    """Read and check a request set file.

    Raises:
        RequestSetError: the file is unreadable or wrong (names file, line and field).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RequestSetError(f"{path}: cannot read the request set ({e.strerror})") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        problem = yaml_problem(e)
        raise RequestSetError(f"{path}:{problem.line or '?'}: {problem}") from None
    try:
        parsed = RequestSetFile.model_validate(data)
    except ValidationError as e:
        found = problems(e, data, RequestSetFile)
        lines = "\n".join(f"  {path}:{p.line or '?'}: {p}" for p in found)
        raise RequestSetError(f"{path}: request set has problems:\n{lines}") from None
    agent_file = (path.parent / parsed.agent).resolve()
    return RequestSet(path=path, agent_file=agent_file, requests=parsed.requests)
