"""How well an agent understands callers it has never heard: request sets, the bench, reports.

``callagent bench understanding [--set FILE] [--voices ...] [--noise none,babble]
[--snr 10] [--calls-at-once N] [--limit N] [--json FILE] [--html FILE]`` places one real
call per request x voice x condition. Modules, one concern each:

- :mod:`~simulator.understanding.requests`: the request-set file format and loader;
- :mod:`~simulator.understanding.voices`: the callers' voices and rates, and each request
  as a caller says it;
- :mod:`~simulator.understanding.bench`: the command and the calls;
- :mod:`~simulator.understanding.outcomes`: what a call did with the request, read from
  the agent's events (acted right or wrong, clarified, repaired, cut off, fragments);
- :mod:`~simulator.understanding.results`: the figures (per condition, intent, voice,
  style; confusion table; WER; turn latency of complete requests);
- :mod:`~simulator.understanding.report`: console tables, JSON and HTML.

The held-out set of the reference agent is ``scenarios/dental/requests/understanding.yaml``.
"""
