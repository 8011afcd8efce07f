"""The setting groups :class:`bot.settings.Settings` is assembled from, one module per job.

Each group declares its fields only (environment variable, default, one-line
description); loading, cross-field checks and ``.env.example`` stay in :mod:`bot.settings`.
"""
