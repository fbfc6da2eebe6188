"""mmregion.utils.log_utils: counted skips are logged at powers of two."""
import logging

from mmregion.utils import log_utils


def test_log_count_at_powers_of_two(monkeypatch):
    logged = []
    monkeypatch.setattr(log_utils, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    for n in range(1, 10):
        log_utils.log_count(n, f'n={n}')
    assert [m for m, _ in logged] == ['n=1', 'n=2', 'n=4', 'n=8']
    assert {lv for _, lv in logged} == {logging.WARNING}
