"""The Flask extension on Redis: ``JOBQ_DATABASE = "redis://..."`` and nothing else
changes; jobs run in the app's context on the extension's worker pool."""

from __future__ import annotations

import pytest
from flask import current_app

import jobq
from flask_jobq import JobQ, state_for
from jobq.storage.redis import RedisStorage
from tests.helpers import AppFactory, eventually
from tests.integration._redis_url import redis_url

pytestmark = pytest.mark.redis


def test_a_redis_url_in_jobq_database_runs_jobs_there(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("where")
    def where() -> str:
        return current_app.name

    with redis_url() as url:
        app = make_app("redis", JOBQ_DATABASE=url, TESTING=False)
        state = state_for(app)
        storage = state.queue.storage
        assert isinstance(storage, RedisStorage)
        assert f"prefix={storage.prefix.replace(':', '%3A')}" in url

        @app.post("/go")
        def go() -> dict[str, int]:
            return {"id": where.enqueue().id}

        with app.test_client() as client:
            job_id = client.post("/go").get_json()["id"]
            final = {jobq.JobStatus.COMPLETED, jobq.JobStatus.FAILED, jobq.JobStatus.CANCELLED}
            eventually(lambda: state.queue.get(job_id).status in final)
            job = state.queue.get(job_id)
            assert job.status is jobq.JobStatus.COMPLETED, job.error
            assert job.decoded_result() == "redis"
        state.close(timeout=5.0)


def test_a_bad_redis_option_names_the_setting(make_app: AppFactory) -> None:
    with redis_url() as url:
        app = make_app("bad", JOBQ_DATABASE=url.replace("durability=ignore", "durability=x"))
        with pytest.raises(ValueError, match="durability must be"):
            state_for(app).queue  # noqa: B018 - the queue opens on first use
