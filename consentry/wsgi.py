"""WSGI entry point for `consentry serve` (granian, or gunicorn).

`application` is Django's WSGI handler behind the machine lane
(consentry/web/lane.py), which answers the precomputed OAuth/OpenID documents itself.
"""

import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")

# A request thread that waited on the database (or SQLite, which releases the GIL in
# every call) waits again for the GIL, which the running thread gives up only every
# switch interval: 5 ms by default, longer than a whole Graph API call. Half a
# millisecond keeps a served request from queueing behind another's time slice
# (issue "Performance"; docs/performance.md).
sys.setswitchinterval(0.0005)

django_application = get_wsgi_application()

from django.db import connection  # noqa: E402

if connection.vendor == "sqlite":
    from consentry.db.sqlite3.base import checkpoint_in_background

    # Checkpoints in a thread of the server, not inside a request (consentry/db/sqlite3).
    checkpoint_in_background()

from consentry.web import lane  # noqa: E402  (after Django is set up)

application = lane.MachineLane(django_application)
