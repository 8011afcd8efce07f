"""Serving the agent: worker processes on one port, graceful drain, recycling.

- :mod:`bot.web.drain` (the app's part): on SIGTERM stop taking calls, let live ones
  finish, then hand each remaining call to a person or say goodbye (``when_stopping``).
- :mod:`bot.serving.server`: uvicorn's server with the drain run before its own shutdown.
- :mod:`bot.serving.supervisor`: ``callagent serve --workers N``: N processes on one
  inherited listening socket, restarted when they die, replaced when they recycle.
- :mod:`bot.serving.recycle`: when a worker asks for its replacement (calls, memory).
"""
