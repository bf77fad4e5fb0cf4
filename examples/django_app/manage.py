#!/usr/bin/env python
"""The Django example, run with no code of ours in it::

cd examples/django_app
SENTRY_DSN=... opentelemetry-instrument python manage.py runserver --noreload
SENTRY_DSN=... opentelemetry-instrument gunicorn shop.wsgi
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
