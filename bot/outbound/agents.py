"""Which agents can place calls, by key (the agent file's stem), and what their script needs.

Until the server serves several agents (``runtime.agents``, a mapping of key to agent), the
default agent's key (the stem of ``CALLAGENT_AGENT_FILE``) is the only one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.call.runtime import Runtime
from processors.agent_definition import AgentDefinition


def default_agent_key(runtime: Runtime) -> str:
    """The server's default agent's key."""
    return runtime.settings.agent_file.stem


def find_agent(runtime: Runtime, key: str) -> AgentDefinition | None:
    """The agent with this key, or None."""
    registry: Any = getattr(runtime, "agents", None)
    if isinstance(registry, Mapping):
        found: Any = registry.get(key)
        if isinstance(found, AgentDefinition):
            return found
    return runtime.agent if key == default_agent_key(runtime) else None


def missing_variables(agent: AgentDefinition, variables: Mapping[str, str]) -> list[str]:
    """The variables the agent's outbound script needs that ``variables`` lacks."""
    outbound: Any = getattr(agent, "outbound", None)
    if outbound is None or not hasattr(outbound, "missing_variables"):
        return []
    return list(outbound.missing_variables(variables))
