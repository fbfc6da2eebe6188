"""mmregion's import graph has no upward edge between layers and no cycle
(``tools/check_import_layers.py``, issue #22)."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools'))
import check_import_layers as layers  # noqa: E402


def test_no_upward_import_and_no_cycle():
    paths, edges = layers.collect()
    assert len(paths) > 50 and sum(len(t) for t in edges.values()) > 100
    assert layers.upward_edges(edges) == []
    assert layers.package_cycles(edges) == []
    out = subprocess.run([sys.executable, 'tools/check_import_layers.py'],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip().endswith('0 upward, 0 cycles')


def test_the_check_finds_an_upward_edge_and_a_cycle():
    edges = {
        'mmregion.utils.a': {'mmregion.apis.b'},
        'mmregion.apis.b': {'mmregion.utils.a'},
        'mmregion.models.c': {'mmregion.utils.a'},
    }
    assert layers.upward_edges(edges) == [('mmregion.utils.a',
                                           'mmregion.apis.b')]
    assert layers.package_cycles(edges) == [[
        'mmregion.apis.b', 'mmregion.utils.a'
    ]]
