"""``python -m otel_sentry.inbox``: run the inbox in the foreground (see ``command.py``)."""

import sys

from .command import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
