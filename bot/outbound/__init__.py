"""The outbound leg of the server: placing one call and following it to its end.

``placer`` checks and records an attempt and hands it to a :class:`~bot.outbound.dialer.Dialer`
(Twilio's REST API, or the browser page that "receives" the call); ``twilio_leg`` lets the
answered call in through the voice webhook and stream and reads Twilio's status and
``AnsweredBy`` callbacks; ``in_call`` joins a running call to its attempt; ``listeners`` tells
whoever cares (campaign retries) that an attempt ended; ``live_calls`` finds a running call by
its attempt.

Campaigns run on the job queue: ``runner`` (the huey tasks), ``ports`` (what the runner
needs of the campaign store and the dialler), ``consumer`` (the queue consumed in the server
or a ``callagent worker``) and ``wiring`` (all of it built from the settings).
"""
