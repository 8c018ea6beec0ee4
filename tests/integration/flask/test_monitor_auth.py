"""``@jobq_ext.monitor_auth`` keeps the callback on the extension: apps without
JOBQ_MONITOR_AUTH use it, before or after init_app, and no app's config is rewritten."""

from __future__ import annotations

from flask import Flask, request

from flask_jobq import JobQ
from tests.helpers import AppFactory


def _stats(app: Flask, **headers: str) -> int:
    return app.test_client().get("/jobq/stats", headers=headers).status_code


def test_the_extension_callback_serves_apps_without_their_own(make_app: AppFactory) -> None:
    ext = JobQ()
    early = make_app("early", extension=ext, JOBQ_START_WORKERS=False)
    own = make_app("own", extension=ext, JOBQ_START_WORKERS=False, JOBQ_MONITOR_AUTH=lambda: True)
    for app in (early, own):
        app.testing = False
    assert _stats(early) == 403

    @ext.monitor_auth
    def only_admins() -> bool:
        return request.headers.get("X-Admin") == "1"

    late = make_app("late", extension=ext, JOBQ_START_WORKERS=False)
    late.testing = False
    for app in (early, late):
        assert app.config["JOBQ_MONITOR_AUTH"] is None  # the app's config is left alone
        assert _stats(app) == 403
        assert _stats(app, **{"X-Admin": "1"}) == 200
    assert _stats(own) == 200  # the app's own setting wins

    @ext.monitor_auth
    def nobody() -> bool:
        return False

    assert _stats(early, **{"X-Admin": "1"}) == 403  # the later callback replaces it
    early.config["JOBQ_MONITOR_AUTH"] = lambda: True  # set afterwards: read per request
    assert _stats(early) == 200


def test_another_extension_callback_does_not_reach_this_app(make_app: AppFactory) -> None:
    mine, other = JobQ(), JobQ()
    app = make_app("mine", extension=mine, JOBQ_START_WORKERS=False)
    app.testing = False
    other.monitor_auth(lambda: True)
    assert _stats(app) == 403
