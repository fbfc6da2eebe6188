"""A progress bar for the tools that stays readable in a log file.

On a terminal it redraws one line (``\\r``); when the stream is not a TTY
(redirected to a file, a cluster log) it writes whole lines, at most one per
``line_interval`` seconds plus the last one, so ``tail -f`` and ``grep`` see
progress and the log is not one long line of ``\\r`` updates.
"""
import sys
import time
from typing import IO, Optional

__all__ = ['ProgressBar']


def _isatty(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like
        return False


class ProgressBar:
    """Count items and show ``done/total (pct) rate unit/s ETA``.

    Args:
        total (int): Number of items.
        desc (str): Prefix in brackets, e.g. ``'proposals'``.
        unit (str): Unit of the rate. Defaults to ``'img'``.
        enabled (bool): Show anything at all. Defaults to True.
        stream (IO, optional): Where to write. Defaults to ``sys.stderr``.
        interval (float): Seconds between redraws on a TTY.
            Defaults to 0.5.
        line_interval (float): Seconds between lines when ``stream`` is not
            a TTY. Defaults to 30.
        tty (bool, optional): Force TTY (``True``) or line (``False``)
            mode. Defaults to None (ask the stream).
    """

    def __init__(self,
                 total: int,
                 desc: str = 'progress',
                 unit: str = 'img',
                 enabled: bool = True,
                 stream: Optional[IO] = None,
                 interval: float = 0.5,
                 line_interval: float = 30.,
                 tty: Optional[bool] = None) -> None:
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.enabled = enabled and self.total > 0
        self.stream = sys.stderr if stream is None else stream
        self.tty = _isatty(self.stream) if tty is None else bool(tty)
        self.interval = interval if self.tty else line_interval
        self.count = 0
        self.start = time.time()
        self._last = self.start
        self._drawn = False

    def _line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else 0
        mins, secs = divmod(int(eta), 60)
        return (f'[{self.desc}] {self.count}/{self.total} '
                f'({100. * self.count / self.total:5.1f}%) '
                f'{rate:6.1f} {self.unit}/s '
                f'ETA {mins // 60}:{mins % 60:02d}:{secs:02d}')

    def update(self, n: int = 1) -> None:
        """Add ``n`` finished items and redraw when it is time."""
        self.count += n
        if not self.enabled:
            return
        now = time.time()
        first = not self._drawn
        if first or now - self._last >= self.interval or \
                self.count >= self.total:
            self._last = now
            self._drawn = True
            if self.tty:
                self.stream.write('\r' + self._line(now))
            else:
                self.stream.write(self._line(now) + '\n')
            self.stream.flush()

    def close(self) -> None:
        """End the bar (a newline after the last TTY redraw)."""
        if self.enabled and self.tty and self._drawn:
            self.stream.write('\n')
            self.stream.flush()
