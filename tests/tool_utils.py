"""Load a ``tools/*.py`` script as a module, to call its ``main`` and
helpers in the test process (``from tool_utils import load_tool``)."""
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str) -> ModuleType:
    """Execute ``tools/<name>.py`` as a fresh module.

    Args:
        name (str): The script's path under ``tools/`` without ``.py``,
            e.g. ``'extract_backbone'``, ``'analysis_tools/analyze_logs'``.

    Returns:
        module: The executed script (``__name__`` is ``name`` with ``/``
        replaced by ``_``, so ``if __name__ == '__main__'`` does not run).
    """
    spec = importlib.util.spec_from_file_location(
        name.replace('/', '_'), osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
