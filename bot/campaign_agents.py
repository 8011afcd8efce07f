"""Which agent a campaign names, and the per-contact variables its script needs.

A campaign names its agent by key: the agent file's stem (``appointment_reminders``),
one of the agents the server serves (``CALLAGENT_AGENT_FILE`` and
``CALLAGENT_AGENT_FILES``), as calls find them (``Runtime.for_agent``). Its outbound
section's ``variables`` are the columns every contact row must give.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.agent import AgentFileError, load_agent
from bot.settings import Settings

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class UnknownAgentError(ValueError):
    """No agent file with that key, or one that does not load (the message says which)."""


def agent_file(settings: Settings, key: str) -> Path:
    """The agent file called ``key``.

    Raises:
        UnknownAgentError: Not a key, or no such file.
    """
    if not _KEY.match(key):
        raise UnknownAgentError(
            f"{key!r} is not an agent key (the agent file's name without .yaml, "
            "e.g. appointment_reminders)"
        )
    served = (Path(settings.agent_file), *settings.more_agent_files)
    for candidate in served:
        if candidate.stem == key:
            return candidate
    known = ", ".join(path.stem for path in served)
    raise UnknownAgentError(
        f"no agent {key!r} on this server (it serves: {known}; add the file to "
        "CALLAGENT_AGENT_FILES)"
    )


def agent_variables(settings: Settings, key: str) -> tuple[str, ...]:
    """The variables the agent's outbound script needs from each contact.

    Raises:
        UnknownAgentError: No such agent, or its file does not load.
    """
    path = agent_file(settings, key)
    try:
        agent = load_agent(path)
    except AgentFileError as e:
        raise UnknownAgentError(str(e)) from None
    return tuple(getattr(getattr(agent, "outbound", None), "variables", ()) or ())
