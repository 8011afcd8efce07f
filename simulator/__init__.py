"""Simulated callers: scenario files, caller audio (voice, noise, line), the runner, reports.

``callagent simulate`` (``simulator/scenarios/cli.py``) and ``callagent bench`` use it to
place scripted calls on an agent over the real Twilio Media Streams protocol.
"""
