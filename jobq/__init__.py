"""jobq: background jobs for Flask and other WSGI apps, with no broker to run.

This package is the framework-free core; it never imports Flask.
"""

from . import signals as signals
from .bounded_executor import BoundedExecutor as BoundedExecutor
from .bounded_executor import TaskOptions as TaskOptions
from .clock import SYSTEM_CLOCK as SYSTEM_CLOCK
from .clock import Clock as Clock
from .clock import SystemClock as SystemClock
from .errors import ConfigurationError as ConfigurationError
from .errors import JobqError as JobqError
from .errors import QueueFull as QueueFull
from .errors import TaskTimeout as TaskTimeout
from .executor_registry import executor as executor
from .ratelimit import RateLimiter as RateLimiter
from .ratelimit import SlidingWindowLimiter as SlidingWindowLimiter
from .ratelimit import TokenBucket as TokenBucket

__all__ = [
    "BoundedExecutor",
    "Clock",
    "ConfigurationError",
    "JobqError",
    "QueueFull",
    "RateLimiter",
    "SYSTEM_CLOCK",
    "SlidingWindowLimiter",
    "SystemClock",
    "TaskOptions",
    "TaskTimeout",
    "TokenBucket",
    "executor",
    "signals",
]

__version__ = "0.1.0.dev0"
