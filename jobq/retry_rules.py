"""Retry rules by exception: a task's ``retry_on=`` and ``discard_on=``.

``retry_on`` gives the exceptions it names their own attempt budget and backoff;
``discard_on`` ends a job at once, without retries, when an exception it names
ends an attempt. Exceptions neither names are retried by the task's own
``max_attempts`` and ``backoff``, as before.

Matching: the exception's class and its bases are looked up in the order of its
MRO, and the first class named in either option wins, so the most specific rule
applies whatever the order of declaration (``retry_on=(ConnectionError,),
discard_on=(Exception,)`` retries a ``ConnectionRefusedError`` and discards a
``KeyError``). What a task says itself wins over every rule: :class:`~jobq.Retry`
and :class:`~jobq.Fail` are never matched, and a :class:`~jobq.TransientError` is
never discarded and its ``retry_after`` replaces the rule's backoff.

Attempts are the job's total (``job.attempts``, whatever ended each one), and a
rule's budget is capped by the job's ``max_attempts``: a rule narrows the budget,
never widens it (checked when the task is declared).

Rule: imports basic values only (backoff, errors, validate); :mod:`jobq.task_options`
checks the options with it and the worker asks it what an exception means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import backoff as backoffs
from .backoff import Backoff
from .errors import Fail, Retry, TransientError
from .validate import check_count

__all__ = ["DiscardOn", "RetryDecision", "RetryOn", "RetryRule", "RetryRules"]

ExceptionClass = type[BaseException]


@dataclass(frozen=True)
class RetryRule:
    """How a job is retried after an exception that ``retry_on`` names.

    :param attempts: the job's attempts in all (the first run included) when
        this exception ends one, an integer >= 1 and at most the task's
        ``max_attempts``; default None: the job's ``max_attempts``. Attempts
        count whatever ended them, not this exception only.
    :param backoff: delay before the retry: seconds, a callable
        ``backoff(attempt) -> seconds`` (see :mod:`jobq.backoff`), or None
        (default) for the task's own backoff.
    """

    attempts: int | None = None
    backoff: float | Backoff | None = None
    delay: Backoff | None = field(init=False, repr=False, compare=False)
    """The backoff as a callable, or None for the task's."""

    def __post_init__(self) -> None:
        if self.attempts is not None:
            check_count("RetryRule attempts", self.attempts)
        delay = None if self.backoff is None else backoffs.resolve(self.backoff)
        object.__setattr__(self, "delay", delay)


RetryOn = (
    ExceptionClass
    | Iterable[ExceptionClass]
    | Mapping[ExceptionClass | tuple[ExceptionClass, ...], RetryRule | int]
)
"""A task's ``retry_on=``: an exception class, several (a tuple or list), or a dict
from a class (or a tuple of classes) to a :class:`RetryRule` or to an attempt budget."""

DiscardOn = ExceptionClass | Iterable[ExceptionClass]
"""A task's ``discard_on=``: an exception class or several (a tuple or list)."""


@dataclass(frozen=True)
class RetryDecision:
    """What a rule makes of an attempt that an exception ended.

    :ivar retry: whether the job runs again.
    :ivar backoff: the rule's backoff, or None for the task's.
    :ivar note: appended to the recorded error, saying which rule applied.
    """

    retry: bool
    backoff: Backoff | None
    note: str


@dataclass(frozen=True)
class RetryRules:
    """A task's checked ``retry_on`` and ``discard_on``; build with :meth:`checked`."""

    retry_on: Mapping[ExceptionClass, RetryRule]
    discard_on: frozenset[ExceptionClass]

    def __hash__(self) -> int:  # hashable like the task settings that hold it
        return hash((tuple(self.retry_on.items()), self.discard_on))

    @classmethod
    def checked(
        cls, retry_on: RetryOn | None, discard_on: DiscardOn | None, *, max_attempts: int
    ) -> RetryRules | None:
        """The rules of these options, or None when both are None or empty.

        Raises TypeError naming the option for anything but exception classes (and
        rules or attempt counts as a dict's values), ValueError for a class named
        twice, a budget above ``max_attempts``, :class:`~jobq.Retry` or
        :class:`~jobq.Fail` named, or a :class:`~jobq.TransientError` in ``discard_on``.
        """
        retry = _retry_rules(retry_on, max_attempts)
        discard = _classes("discard_on", discard_on)
        for kind in discard:
            if issubclass(kind, TransientError):
                raise ValueError(
                    f"discard_on cannot name {kind.__name__}: a TransientError is "
                    "retried while attempts remain; raise jobq.Fail to end a job at once"
                )
            if kind in retry:
                raise ValueError(f"{kind.__name__} is in both retry_on and discard_on")
        if len(set(discard)) != len(discard):
            raise ValueError("discard_on names the same exception class twice")
        if not retry and not discard:
            return None
        return cls(retry, frozenset(discard))

    def decide(
        self, exception: BaseException, *, attempts: int, max_attempts: int
    ) -> RetryDecision | None:
        """What the rules make of ``exception`` ending attempt number ``attempts`` of
        a job allowed ``max_attempts``; None when no rule names it or a base of it."""
        transient = isinstance(exception, TransientError)
        for kind in type(exception).__mro__:
            rule = self.retry_on.get(kind)
            if rule is not None:
                return _retried(kind, rule, attempts, max_attempts)
            if kind in self.discard_on and not transient:
                named = kind.__name__
                which = (
                    f"{named} is"
                    if kind is type(exception)
                    else (f"{type(exception).__name__} matches {named}")
                )
                return RetryDecision(False, None, f"not retried: {which} in discard_on")
        return None


def _retried(
    kind: ExceptionClass, rule: RetryRule, attempts: int, max_attempts: int
) -> RetryDecision:
    budget = max_attempts if rule.attempts is None else min(rule.attempts, max_attempts)
    where = f"the retry_on rule for {kind.__name__}"
    if attempts >= budget:
        return RetryDecision(False, None, f"not retried: {where} allows {budget} attempts")
    return RetryDecision(True, rule.delay, f"retried by {where} (at most {budget} attempts)")


def _retry_rules(retry_on: RetryOn | None, max_attempts: int) -> dict[ExceptionClass, RetryRule]:
    if not isinstance(retry_on, Mapping):
        return {kind: RetryRule() for kind in _unique("retry_on", _classes("retry_on", retry_on))}
    rules: dict[ExceptionClass, RetryRule] = {}
    for key, value in retry_on.items():
        rule = _rule_of(key, value, max_attempts)
        for kind in _classes("retry_on", key):
            if kind in rules:
                raise ValueError(f"retry_on names {kind.__name__} twice")
            rules[kind] = rule
    return rules


def _rule_of(key: object, value: object, max_attempts: int) -> RetryRule:
    shown = getattr(key, "__name__", repr(key))
    if isinstance(value, RetryRule):
        rule = value
    elif isinstance(value, int) and not isinstance(value, bool):
        check_count(f"retry_on[{shown}] (an attempt budget)", value)
        rule = RetryRule(attempts=value)
    else:
        raise TypeError(
            f"retry_on[{shown}] must be a jobq.RetryRule or an attempt budget (int), got {value!r}"
        )
    if rule.attempts is not None and rule.attempts > max_attempts:
        raise ValueError(
            f"retry_on[{shown}] allows {rule.attempts} attempts, more than the task's "
            f"max_attempts={max_attempts}; a rule narrows the task's budget: raise "
            f"max_attempts to {rule.attempts} and give other exceptions a smaller one with "
            f"retry_on={{..., Exception: {max_attempts}}}"
        )
    return rule


def _classes(option: str, value: object) -> list[ExceptionClass]:
    """The exception classes of an option: one class, or an iterable of them."""
    if value is None:
        return []
    items = [value] if isinstance(value, type) else value
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise TypeError(f"{option} must be an exception class or a tuple of them, got {value!r}")
    classes = list(items)
    for kind in classes:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(f"{option} must name exception classes, got {kind!r}")
        if issubclass(kind, (Retry, Fail)):
            raise ValueError(
                f"{option} cannot name {kind.__name__}: jobq.Retry and jobq.Fail say "
                "themselves what happens to the job, whatever the rules"
            )
    return classes


def _unique(option: str, classes: list[ExceptionClass]) -> list[ExceptionClass]:
    if len(set(classes)) != len(classes):
        raise ValueError(f"{option} names the same exception class twice")
    return classes
