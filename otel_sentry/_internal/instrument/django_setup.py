"""Django: enable the instrumentation only once the project's settings are known.

The contrib Django instrumentation adds its middleware to ``settings.MIDDLEWARE`` when it is
enabled. If ``DJANGO_SETTINGS_MODULE`` is not set yet, it calls ``settings.configure()`` with
empty settings, and the project then runs without its own (``ALLOWED_HOSTS``, ``ROOT_URLCONF``,
...). That is the normal case under ``opentelemetry-instrument python manage.py runserver`` and
``opentelemetry-instrument gunicorn project.wsgi``: the project's own code sets the variable
later. So we wait for ``django.setup()``, which manage.py and the WSGI and ASGI handlers all call
after the settings module is chosen and before any middleware is loaded.

    when_settings_known("django", lambda: DjangoInstrumentor().instrument())
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["when_settings_known"]

_pending: dict[str, Callable[[], object]] = {}


def _settings_known() -> bool:
    from django.conf import settings

    return bool(settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE", "").strip())


def when_settings_known(key: str, enable: Callable[[], object]) -> None:
    """Call ``enable`` now if Django's settings are known, else first in ``django.setup()``."""
    if _settings_known():
        enable()
        return
    import django

    if not _pending:
        original = django.setup

        def setup(*args: Any, **kwargs: Any) -> Any:
            django.setup = original
            pending = list(_pending.values())
            _pending.clear()
            for call in pending:
                call()
            return original(*args, **kwargs)

        django.setup = setup
    _pending[key] = enable
