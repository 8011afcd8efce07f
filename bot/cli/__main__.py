"""``python -m bot.cli``: the ``callagent`` command."""

import sys

from bot.cli import main

sys.exit(main())
