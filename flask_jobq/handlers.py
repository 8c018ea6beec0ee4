"""The ready-made handlers of :mod:`jobq.handlers`, enqueued from Flask code.

Set ``JOBQ_EMAIL``, ``JOBQ_IMAGE`` or ``JOBQ_WEBHOOK`` in the app's config
(a dict of the handler's settings) and the extension installs that handler on
the app's queue. In a request, enqueue through the tasks here, which use the
current app's queue and the job options its settings chose (``max_attempts``,
backoff)::

    from flask_jobq.handlers import send_email

    send_email.enqueue(to=user.email, subject="Welcome", text="Hello!")

Each name exists only when its handler's extra is installed: ``process_image``
needs ``jobq[images]`` (Pillow), ``deliver_webhook`` needs ``jobq[webhooks]``
(requests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

import jobq
from jobq.handlers import email as _email

from .state import state_for

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["HandlerTask", "send_email"]


class HandlerTask(Generic[P, R]):
    """A handler's task as installed on the current app's queue.

    It has no settings of its own: the handler's ``install`` registered the task
    on each app's queue with that app's settings (``max_attempts``, backoff,
    argument checks). ``.enqueue``, ``.enqueue_many`` and ``.options`` go to that
    task; without the handler's config key, they raise
    :class:`jobq.ConfigurationError` saying which key to set. Calling it calls
    the function.

    :ivar name: the task's registered name.
    :ivar config_key: the app config key that installs the handler.
    """

    def __init__(self, fn: Callable[P, R], *, name: str, config_key: str) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.config_key = config_key

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def installed(self) -> jobq.Task[P, R]:
        """The task on the current app's queue. Raises ConfigurationError when the
        app's config does not set :attr:`config_key`, RuntimeError outside an
        application context."""
        task = state_for().queue.tasks.get(self.name)
        if task is None:
            raise jobq.ConfigurationError(
                f"{self.name} is not installed on this app's queue: set "
                f"app.config[{self.config_key!r}] to its settings before init_app"
            )
        return task

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> jobq.Job:
        """As :meth:`jobq.Task.enqueue`, on the current app's queue."""
        return self.installed().enqueue(*args, **kwargs)

    def enqueue_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]], **options: Any
    ) -> list[int]:
        """As :meth:`jobq.Task.enqueue_many`, on the current app's queue."""
        return self.installed().enqueue_many(calls, **options)

    def options(self, **changes: Any) -> jobq.BoundTask[P, R]:
        """As :meth:`jobq.Task.options`, on the current app's queue."""
        return self.installed().options(**changes)

    def __repr__(self) -> str:
        return f"<HandlerTask {self.name} config_key={self.config_key!r}>"


send_email = HandlerTask(_email.send_email, name=_email.TASK_NAME, config_key="JOBQ_EMAIL")
"""Send an email through the app's ``JOBQ_EMAIL`` SMTP settings; see
:func:`jobq.handlers.email.send_email`."""

try:
    from jobq.handlers import image as _image
except ImportError:  # Pillow is not installed: no process_image
    pass
else:
    process_image = HandlerTask(
        _image.process_image, name=_image.TASK_NAME, config_key="JOBQ_IMAGE"
    )
    """Resize and convert an image under the app's ``JOBQ_IMAGE`` settings; see
    :func:`jobq.handlers.image.process_image`."""
    __all__ += ["process_image"]

try:
    from jobq.handlers import webhook as _webhook
except ImportError:  # requests is not installed: no deliver_webhook
    pass
else:
    deliver_webhook = HandlerTask(
        _webhook.deliver_webhook, name=_webhook.TASK_NAME, config_key="JOBQ_WEBHOOK"
    )
    """POST a signed webhook under the app's ``JOBQ_WEBHOOK`` settings; see
    :func:`jobq.handlers.webhook.deliver_webhook`."""
    __all__ += ["deliver_webhook"]
