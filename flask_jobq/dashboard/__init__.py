"""The operator's dashboard: HTML pages inside the monitor, at ``<prefix>/ui/``.

Server-rendered with Flask's Jinja (autoescaped: job data is attacker-controlled
text), with its CSS, script and icon shipped in the package; every page and
action works without JavaScript, and with it the pages refresh live. Browsers
get the overview at ``<prefix>/`` too (the JSON index stays for other clients).

- :mod:`.views`: the blueprint, its pages and form actions.
- :mod:`.data`: what each page reads from the queue, in one place.
- :mod:`.security`: response headers (a strict Content-Security-Policy) and the
  forms' CSRF token.
- :mod:`.format`: times, numbers and the server-drawn charts.

Rule: imports the ``jobq`` core, :mod:`flask_jobq.state` and Flask; never
:mod:`flask_jobq.views`, which mounts it.
"""

from __future__ import annotations

from .views import DASHBOARD_PATH, make_dashboard, overview_page, wants_html

__all__ = ["DASHBOARD_PATH", "make_dashboard", "overview_page", "wants_html"]
