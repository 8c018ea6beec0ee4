"""Where a ``jobq`` command's queue comes from: ``--app MODULE[:NAME]`` (the queue
your code creates, with its tasks and schedules) or ``--db PATH_OR_URL`` (the
database alone), plus the ``--import`` modules.

One rule for a missing SQLite file, whatever the command: ``--db`` never creates
one (:func:`refuse_missing_file`); ``--app`` opens the database as your code
does. The current directory is importable, as with ``flask --app``. An exception
raised inside your module comes out as :class:`~jobq.errors.AppImportError`
carrying your module's traceback, without jobq's frames.

Rule: the only module of :mod:`jobq.cli` that imports user modules; imports the
queue, the default queue and the errors, never argparse or Flask.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType, TracebackType

from ..default_queue import configure, default_queue
from ..errors import AppImportError, CommandError
from ..queue import DurableQueue

DATABASE_ENV = "JOBQ_DATABASE"
"""Environment variable read for the database when neither ``--app`` nor ``--db``
is given."""

SQLITE_SCHEME = "sqlite:///"
_SHOWN_NAMES = 12  # names listed when a module holds no queue, or several


def sqlite_file(location: str) -> Path | None:
    """The SQLite file ``location`` names (a path or a ``sqlite:///`` URL), or None
    for another URL (``postgresql://``, ``redis://``)."""
    if location.startswith(SQLITE_SCHEME):
        return Path(location[len(SQLITE_SCHEME) :])
    if "://" in location:
        return None
    return Path(location)


def same_database(first: str, second: str) -> bool:
    """Whether two ``--db`` locations name one database: the same SQLite file (by
    its resolved path), or the same URL."""
    files = sqlite_file(first), sqlite_file(second)
    if files[0] is not None and files[1] is not None:
        return files[0].resolve() == files[1].resolve()
    return first == second


def refuse_missing_file(location: str, option: str = "--db") -> None:
    """Raise :class:`CommandError` when ``location`` is a SQLite file that does not
    exist: a command given a mistyped path would otherwise create an empty database
    and wait there for jobs that never come. ``option`` says where it came from."""
    path = sqlite_file(location)
    if path is None or path.is_file():
        return
    raise CommandError(
        f"no database file at {str(path.absolute())!r} ({option} {location}): check the "
        "path and the current directory, or give the queue your code creates with "
        "--app MODULE:QUEUE, which opens (and if needed creates) the database as your "
        "code does"
    )


def make_cwd_importable() -> None:
    """Put the current directory first on the import path, as ``python -m`` and
    ``flask --app`` do (a console script's path starts with its own folder)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _user_frames(exc: BaseException) -> TracebackType | None:
    """The traceback of ``exc`` from the first frame that is not jobq's or importlib's."""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename != __file__ and "importlib" not in filename:
            break
        tb = tb.tb_next
    return tb


def import_module(name: str, option: str) -> ModuleType:
    """Import the user's module ``name`` given to ``option`` (``--app``, ``--import``).

    Raises :class:`CommandError` when the module itself is not found, and
    :class:`AppImportError` (with the module's traceback) when it raised."""
    make_cwd_importable()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CommandError(
                f"cannot import {name!r} ({option}): no module named {exc.name!r} in the "
                f"current directory ({os.getcwd()}) or on the Python path; run jobq from "
                "your project's folder, or check the name"
            ) from None
        raise _failed(name, option, exc) from None
    except Exception as exc:  # the user's code raised: SyntaxError, NameError, ...
        raise _failed(name, option, exc) from None


def _failed(name: str, option: str, exc: Exception) -> AppImportError:
    details = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc)))
    return AppImportError(
        f"importing {name!r} ({option}) failed with {type(exc).__name__}: {exc} "
        "(its traceback is above)",
        details,
    )


def _type_name(value: object) -> str:
    if inspect.ismodule(value):
        return "module"
    if inspect.isclass(value):
        return "class"
    if inspect.isroutine(value):
        return "function"
    return type(value).__name__


def describe_queue(queue: DurableQueue) -> str:
    """``"DurableQueue on instance/jobs.db with tasks a, b"`` (or ``"with no task"``)."""
    where = getattr(queue.storage, "path", type(queue.storage).__name__)
    tasks = ", ".join(sorted(queue.tasks)) if queue.tasks else ""
    return f"DurableQueue on {where} " + (f"with tasks {tasks}" if tasks else "with no task")


def queues_in(module: ModuleType) -> list[tuple[str, DurableQueue]]:
    """The module's public global names bound to a :class:`DurableQueue`, each queue
    once (under its first name), in definition order."""
    found: list[tuple[str, DurableQueue]] = []
    for name, value in vars(module).items():
        if (
            not name.startswith("_")
            and isinstance(value, DurableQueue)
            and all(value is not q for _, q in found)
        ):
            found.append((name, value))
    return found


def _what_is_there(module: ModuleType) -> str:
    names = [
        f"{name} ({_type_name(value)})"
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    ]
    if not names:
        return "it defines no public name"
    shown = ", ".join(names[:_SHOWN_NAMES])
    return "found: " + shown + (", ..." if len(names) > _SHOWN_NAMES else "")


_FLASK_HINT = "; for a Flask app, run 'flask --app {module} jobq ...' instead"


def _looks_like_flask(module: ModuleType) -> bool:
    return any(
        type(value).__module__.split(".")[0] in ("flask", "flask_jobq")
        for value in vars(module).values()
    )


def queue_from_app(spec: str) -> DurableQueue:
    """The queue ``--app`` names: ``MODULE:NAME`` (a dotted attribute path is
    allowed, e.g. ``myapp:jobs.queue``) or ``MODULE`` holding exactly one
    :class:`DurableQueue`. Imports the module; raises :class:`CommandError` saying
    what was found when there is no such queue, or several."""
    module_name, colon, attribute = spec.strip().partition(":")
    if not module_name or (colon and not attribute):
        raise CommandError(
            f"--app {spec!r}: give MODULE:NAME (e.g. --app myapp.tasks:queue) or MODULE"
        )
    module = import_module(module_name, "--app")
    if attribute:
        return _named_queue(module, module_name, attribute)
    found = queues_in(module)
    if len(found) == 1:
        return found[0][1]
    if not found:
        hint = _FLASK_HINT.format(module=module_name) if _looks_like_flask(module) else ""
        raise CommandError(
            f"module {module_name!r} (--app) defines no jobq.DurableQueue "
            f"({_what_is_there(module)}); give the module that creates your queue, or "
            f"--app {module_name}:NAME{hint}"
        )
    listed = "; ".join(f"{name} ({describe_queue(queue)})" for name, queue in found)
    raise CommandError(
        f"module {module_name!r} (--app) defines {len(found)} DurableQueues: {listed}; "
        f"choose one, e.g. --app {module_name}:{found[0][0]}"
    )


def _named_queue(module: ModuleType, module_name: str, attribute: str) -> DurableQueue:
    value: object = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CommandError(
                f"module {module_name!r} has no {attribute!r} (--app "
                f"{module_name}:{attribute}); {_what_is_there(module)}"
            ) from None
    if not isinstance(value, DurableQueue):
        hint = _FLASK_HINT.format(module=module_name) if _looks_like_flask(module) else ""
        raise CommandError(
            f"{module_name}:{attribute} (--app) is a {_type_name(value)}, not a "
            f"jobq.DurableQueue; {_what_is_there(module)}{hint}"
        )
    return value


@contextlib.contextmanager
def default_queue_set(queue: DurableQueue) -> Iterator[None]:
    """``queue`` is the process's default queue (:func:`jobq.configure`) while inside;
    the one before comes back after (a command run in-process leaves none behind)."""
    before = configure(queue)
    try:
        yield
    finally:
        configure(before)


def import_tasks(queue: DurableQueue, modules: Sequence[str]) -> list[ModuleType]:
    """Import ``modules`` (``--import``) while ``queue`` is the default queue, so that
    tasks registered on ``jobq.default_queue()`` land on it. Returns the modules.
    Raises :class:`CommandError` when one of them configures another default queue."""
    imported = []
    for name in modules:
        imported.append(import_module(name, "--import"))
        if default_queue() is not queue:
            raise CommandError(
                f"module {name!r} (--import) replaced the default queue; register tasks on "
                "jobq.default_queue(), or run the queue it creates with --app "
                f"{name}:NAME instead of --db"
            )
    return imported


def explain_no_tasks(source: str, modules: Sequence[ModuleType]) -> str:
    """Why a worker has no task, for the error it stops with: names the queues with
    tasks that ``modules`` define, if any. ``source`` says where its queue came from
    (``"--db"`` or ``"--app myapp:queue"``)."""
    for module in modules:
        for name, other in queues_in(module):
            if other.tasks:
                return (
                    f"{module.__name__} defines DurableQueue {name!r} with tasks "
                    f"{', '.join(sorted(other.tasks))} but the worker uses the queue opened "
                    f"from {source}; run `jobq worker --app {module.__name__}:{name}`"
                )
    if source == "--db":
        imported = ", ".join(module.__name__ for module in modules)
        told = f"{imported} registered none on it; " if imported else ""
        return (
            f"no task is registered on the queue opened from --db: {told}run the queue your "
            "code creates, `jobq worker --app MODULE:QUEUE`, or --import modules that "
            "register tasks on jobq.default_queue()"
        )
    return (
        f"no task is registered on the queue of {source}: register tasks on it with "
        "@queue.task in that module, or --import the modules that do"
    )
