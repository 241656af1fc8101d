"""WSGI entry point for `consentry serve` (granian, or gunicorn)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")

application = get_wsgi_application()
