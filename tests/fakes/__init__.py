"""The tests' fakes, one module per kind of external system, each on the real interface.

- :mod:`.speech`: STT and TTS engines (``ScriptedRecognizer``, ``ScriptedSynthesizer``) on
  the project's engine protocols, run inside the real Pipecat STT/TTS services.
- :mod:`.smart_turn`: Smart Turn with scripted verdicts, on the real analyzers.
- :mod:`.classifier`: the fast intent classifier (``ScriptedClassifier``).
- :mod:`.llm_server`: an OpenAI-compatible chat-completions server (as Groq's API).
- :mod:`.crm`: the CRM interface (``FakeCRM``) and a customer's REST CRM server.
- :mod:`.hubspot`: HubSpot's CRM objects API.
- :mod:`.twilio`: Twilio's REST API (the simulator's) and the Media Streams start.
- :mod:`.daily`: Daily's REST API (rooms and meeting tokens).
- :mod:`.agent_desktop`: the agent desktop's screen-pop webhook.

The HTTP fakes serve on loopback through :class:`simulator.loopback.LoopbackServer`.
"""
