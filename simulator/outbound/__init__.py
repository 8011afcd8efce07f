"""The simulator's outbound leg: the fake Twilio REST API places calls to simulated callees.

:mod:`~simulator.outbound.callee` says who answers a number (a person, a voicemail, an IVR,
nobody, busy, a failed number), :mod:`~simulator.outbound.fake_dial` answers
``POST /Calls.json`` like Twilio, :mod:`~simulator.outbound.call_flow` rings, answers,
follows the agent's TwiML into a Media Stream and plays the callee, and
:mod:`~simulator.outbound.callbacks` sends Twilio's signed status and ``AnsweredBy``
callbacks.
"""
