"""Log throttling: counted events are logged at counts 1, 2, 4, 8, ...

Skips and fallbacks of the data pipeline (a corrupt image, an image without
proposals, regions lost in the views) are counted per process; logging each
count that is a power of two keeps them visible without flooding the log
(``docs/reliability.md``).
"""
import logging

from mmengine.logging import print_log

__all__ = ['is_power_of_two', 'log_count']


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` (> 0) is a power of 2: the counts at which we log."""
    return n > 0 and (n & (n - 1)) == 0


def log_count(count: int, msg: str, level: int = logging.WARNING) -> None:
    """Log ``msg`` when ``count`` is 1, 2, 4, 8... (never silent, not spam).

    Args:
        count (int): How often the event happened so far (>= 1).
        msg (str): The message (built by the caller, naming the input).
        level (int): Log level. Defaults to ``logging.WARNING``.
    """
    if is_power_of_two(count):
        print_log(msg, logger='current', level=level)
