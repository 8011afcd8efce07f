"""Which agents can place calls, by key (the agent file's stem), and what their script needs."""

from __future__ import annotations

from collections.abc import Mapping

from bot.call.runtime import Runtime
from processors.agent_definition import AgentDefinition


def default_agent_key(runtime: Runtime) -> str:
    """The server's default agent's key."""
    return runtime.agent_key


def find_agent(runtime: Runtime, key: str) -> AgentDefinition | None:
    """The agent with this key, or None."""
    if key not in runtime.agent_keys():
        return None
    return runtime.for_agent(key).agent


def missing_variables(agent: AgentDefinition, variables: Mapping[str, str]) -> list[str]:
    """The variables the agent's outbound script needs that ``variables`` lacks."""
    if agent.outbound is None:
        return []
    return agent.outbound.missing_variables(variables)
