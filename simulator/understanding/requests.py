"""Request sets: caller requests for one agent, phrased as callers talk, with the intended intent.

A request set is *not* the agent's own examples: it is what the agent is measured on
(``callagent bench understanding``), so nobody tunes the agent or the NLU on the held-out
set. A development set, tuned on freely, lives beside it in a file of its own. File format::

    agent: ../../bot/agents/dental_front_desk.yaml   # relative to this file
    context:                       # optional: intent -> a caller line said before its requests
      affirm: Could you tell me when my next appointment is?
      goodbye: What time do you open on Saturdays?
    requests:
      - text: Um, yeah, hi. I'd like to set up a cleaning for sometime next week.
        intent: book_appointment   # an intent, kb:<id> (knowledge-base entry) or out_of_scope
        style: filler_first        # filler_first, two_sentences, terse, dates_names or plain
      - text: yeah go ahead
        intent: affirm             # said after the context line for affirm
      - text: No thanks, that's all.
        intent: deny
        context: Do I have anything booked?   # this request's own context line
      - text: Bye now.
        intent: goodbye
        context: ""                # no context: the request opens the call

Context: some requests only mean something as an answer or a closing. A yes or a no
answers a question, a goodbye follows a request; said as a call's first words they are
rightly not acted on (the agent repairs a yes nobody asked for and checks a goodbye before
any request). A request with a context is judged in context: the caller first says the
context line, the agent answers it in full, then the caller says the request; the
request's outcome is still the agent's first decision after the request starts. A
``context`` entry gives the line for every request of an intent; a request's own
``context`` overrides it (``""``: none). Pick lines the agent acts on outright, whose
answer sets the request up: for a yes or a no, a request answered with a yes/no question
(the reference agent answers ``next_appointment`` with "... Would you like to book one?"
for an unknown number and "... Is there anything else?" for a known caller); for a
goodbye, any answered request. The bench says the context line in the request's voice;
``callagent nlu understanding`` decides it first with the same router. A context line is
not scored; what the agent decided on it is reported beside the request's outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.yaml_schema import Loc, check, load_yaml, problems, yaml_problem

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
    context: str | None = None
    """The caller line said before the request (None: the request opens the call).

    In the file, unset takes the set's ``context`` line for the intent and ``""`` is none;
    a loaded set's requests carry the line they are judged after, or None.
    """

    @field_validator("context")
    @classmethod
    def _context_says_something(cls, line: str | None) -> str | None:
        if line and not line.strip():
            raise ValueError("a context line must say something ('' for no context)")
        return line


def _says_something(line: str) -> str:
    if not line.strip():
        raise ValueError("a context line must say something")
    return line


ContextLine = Annotated[str, AfterValidator(_says_something)]
"""A caller line said before a request."""


class RequestSetFile(BaseModel):
    """The file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str
    context: dict[str, ContextLine] = Field(default_factory=dict)
    requests: list[CallerRequest] = Field(min_length=1)

    def context_problems(self) -> list[tuple[Loc, str]]:
        """Context lines for intents no request has (a misspelt intent, most likely)."""
        intents = list(dict.fromkeys(r.intent for r in self.requests))
        return [
            (
                ("context", intent),
                f"no request has intent '{intent}' (they have: {', '.join(intents)})",
            )
            for intent in self.context
            if intent not in intents
        ]

    def resolved(self) -> list[CallerRequest]:
        """The requests, each with the context line it is judged after (or None)."""
        out = []
        for r in self.requests:
            line = self.context.get(r.intent) if r.context is None else r.context
            out.append(r.model_copy(update={"context": line or None}))
        return out


class RequestSet(BaseModel):
    """A loaded request set: the agent file it is for (resolved) and its requests."""

    model_config = ConfigDict(frozen=True)

    path: Path
    agent_file: Path
    requests: list[CallerRequest]
    """Each with the context line it is judged after (or None)."""
    context: dict[str, str] = Field(default_factory=dict)
    """The set's context line per intent, as written."""

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
    found = check(data, parsed.context_problems())
    if found:
        lines = "\n".join(f"  {path}:{p.line or '?'}: {p}" for p in found)
        raise RequestSetError(f"{path}: request set has problems:\n{lines}")
    agent_file = (path.parent / parsed.agent).resolve()
    return RequestSet(
        path=path, agent_file=agent_file, requests=parsed.resolved(), context=parsed.context
    )
