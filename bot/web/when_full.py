"""The answer to a phone call the process takes no more of (full, or draining).

The agent file's ``when_full`` decides (:class:`processors.agent_definition.WhenFullConfig`):
``reject`` answers ``<Reject reason="busy"/>`` (a busy tone, and Twilio bills nothing);
``queue`` says the agent's line and hands the caller to ``transfer.target`` with the same
TwiML an escalation's transfer uses (hold music while a Twilio queue waits), so a person
takes the call the agent could not.
"""

from __future__ import annotations

from integrations.twilio_rest import reject_twiml, transfer_twiml
from processors.agent_definition import AgentDefinition


def when_full_twiml(agent: AgentDefinition, public_url: str) -> str:
    """TwiML for a phone call past the cap, as ``agent``'s ``when_full`` says.

    Args:
        agent: The agent the number belongs to.
        public_url: The server's public base URL (the hold music is served there).
    """
    when_full = agent.when_full
    if when_full.action == "queue" and agent.transfer.target:
        return transfer_twiml(
            agent.transfer.target,
            hold_line=when_full.line,
            whisper_url=None,  # no call ran: there is no summary to whisper
            action_url=None,  # unanswered: Twilio ends the call after the <Dial>
            hold_music_url=f"{public_url.rstrip('/')}/twilio/hold",
            dial_timeout_s=agent.transfer.dial_timeout_secs,
        )
    return reject_twiml("busy")
