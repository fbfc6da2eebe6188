"""List mmregion's import edges and check the layering (issue #22).

Layers, bottom to top: ``utils``, ``structures`` (and the top-level
modules ``dependency``, ``registry``, ``version``) < ``proposals``,
``testing`` (toy-data generators) < ``datasets`` < ``models`` < ``engine``
< ``apis``. A module
may import from its own layer or a lower one; an import that runs from a
lower layer to a higher one, or an import cycle between modules, is a
violation. Imports are read from the source (``ast``), nothing is run.

Usage::

    python tools/check_import_layers.py            # violations; exit 1 if any
    python tools/check_import_layers.py --edges    # every edge, then the check
"""
import argparse
import ast
import os
import os.path as osp
import sys
from typing import Dict, List, Set, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = 'mmregion'
LAYERS = ('utils', 'structures', 'proposals', 'datasets', 'models', 'engine',
          'apis', 'testing')
# rank of each subpackage; top-level modules sit at the bottom
RANK = {
    'utils': 0,
    'structures': 0,
    'dependency': 0,
    'registry': 0,
    'version': 0,
    '__init__': 99,  # the package root imports what it exposes
    'proposals': 1,
    'datasets': 2,
    'models': 3,
    'engine': 4,
    'apis': 5,
    'testing': 1,
}


def module_name(path: str) -> str:
    """``mmregion/models/heads/ccop_head.py`` -> ``mmregion.models...``."""
    rel = osp.relpath(path, ROOT)[:-len('.py')].split(os.sep)
    if rel[-1] == '__init__':
        rel = rel[:-1]
    return '.'.join(rel)


def imports_of(path: str, name: str) -> List[Tuple[str, List[str]]]:
    """``[(module, [imported names])]`` of every import statement of the
    file, those inside functions included (a deferred import is still a
    dependency)."""
    is_pkg = path.endswith('__init__.py')
    package = name if is_pkg else name.rsplit('.', 1)[0]
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif not isinstance(node, ast.ImportFrom):
            continue
        elif node.level:
            base = package.split('.')
            base = base[:len(base) - node.level + 1]
            mod = '.'.join(base + ([node.module] if node.module else []))
            out.append((mod, [a.name for a in node.names]))
        else:
            out.append((node.module or '', [a.name for a in node.names]))
    return [(m, n) for m, n in out
            if m == PACKAGE or m.startswith(PACKAGE + '.')]


def collect() -> Tuple[Dict[str, str], Dict[str, Set[str]]]:
    """``({module: path}, {module: imported mmregion modules})``."""
    paths = {}
    for dirpath, _, files in os.walk(osp.join(ROOT, PACKAGE)):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(dirpath, f)
                paths[module_name(path)] = path
    edges = {}
    for name, path in paths.items():
        targets = set()
        for mod, names in imports_of(path, name):
            # `from mmregion.models import heads` imports the submodule
            subs = [f'{mod}.{n}' for n in names if f'{mod}.{n}' in paths]
            if subs:
                targets.update(subs)
                continue
            while mod and mod not in paths:
                mod = mod.rsplit('.', 1)[0] if '.' in mod else ''
            if mod:
                targets.add(mod)
        targets.discard(name)
        edges[name] = targets
    return paths, edges


# mmdet's convention: ``register_all_modules`` (in ``utils``) imports every
# layer, inside the function, to fill the registries
ALLOWED_UPWARD = {('mmregion.utils.setup_env', f'mmregion.{layer}')
                  for layer in ('datasets', 'engine', 'models')}


def layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def upward_edges(edges: Dict[str, Set[str]]) -> List[Tuple[str, str]]:
    """Edges from a lower layer to a higher one."""
    bad = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            if (RANK[layer(dst)] > RANK[layer(src)]
                    and (src, dst) not in ALLOWED_UPWARD):
                bad.append((src, dst))
    return bad


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Cycles among modules, ignoring package ``__init__`` re-exports.

    An ``__init__`` that imports its submodules, and a submodule that
    imports a sibling through the package, form a cycle only through the
    re-export; those are not design cycles and are left out.
    """
    plain = {
        src: {d
              for d in dsts if not src.startswith(d + '.')}
        for src, dsts in edges.items()
    }
    plain = {
        src: dsts
        for src, dsts in plain.items() if not osp.basename(src) == PACKAGE
    }
    return cycles(plain)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--edges', action='store_true', help='print every import edge first')
    args = parser.parse_args()
    paths, edges = collect()
    if args.edges:
        for src, targets in sorted(edges.items()):
            for dst in sorted(targets):
                print(f'{src} -> {dst}')
    bad = upward_edges(edges)
    loops = package_cycles(edges)
    for src, dst in bad:
        print(f'upward import: {src} ({layer(src)}) -> {dst} ({layer(dst)})')
    for comp in loops:
        print('import cycle: ' + ' <-> '.join(comp))
    n_edges = sum(len(t) for t in edges.values())
    print(f'{len(paths)} modules, {n_edges} import edges, {len(bad)} upward, '
          f'{len(loops)} cycles')
    return 1 if bad or loops else 0


if __name__ == '__main__':
    sys.exit(main())
