"""The tools' progress bar in a log file and on a terminal (issue 15.5)."""
import io

from mmregion.utils.progress import ProgressBar


def test_progress_writes_lines_when_not_a_tty():
    buf = io.StringIO()  # not a TTY, like a redirected log
    bar = ProgressBar(5, desc='proposals', stream=buf, line_interval=0)
    for _ in range(5):
        bar.update()
    bar.close()
    text = buf.getvalue()
    assert '\r' not in text
    lines = text.splitlines()
    assert len(lines) == 5 and lines[-1].startswith('[proposals] 5/5')
    assert all(line.startswith('[proposals] ') for line in lines)


def test_progress_throttles_lines_and_redraws_on_a_tty():
    buf = io.StringIO()
    bar = ProgressBar(1000, stream=buf, line_interval=3600)
    for _ in range(1000):
        bar.update()
    bar.close()
    # the first and the last line only
    assert buf.getvalue().count('\n') == 2 and '\r' not in buf.getvalue()
    tty = io.StringIO()
    bar = ProgressBar(3, stream=tty, tty=True, interval=0)
    for _ in range(3):
        bar.update()
    bar.close()
    assert tty.getvalue().count('\r') == 3
    assert tty.getvalue().endswith('\n') and tty.getvalue().count('\n') == 1
    quiet = io.StringIO()
    bar = ProgressBar(3, stream=quiet, enabled=False)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ''
