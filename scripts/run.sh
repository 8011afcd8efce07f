#!/usr/bin/env bash
# Install callagent with its embedded speech stack into .venv and start the server
# on http://localhost:7860 (no API keys, no internet needed once installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# speech-gpl: Piper TTS and its espeak-ng data are GPL-3; see README "Licences".
# tune: torch and transformers, to tune the sentence encoder to the agent at the first start.
.venv/bin/python -m pip install --quiet -e '.[speech-gpl,tune]'
exec .venv/bin/callagent serve "$@"
