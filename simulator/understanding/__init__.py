"""How well an agent understands callers it has never heard: request sets, the bench, reports."""
