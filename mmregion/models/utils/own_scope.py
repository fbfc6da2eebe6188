"""Build an algorithm's sub-modules in mmregion's registry scope."""
import functools
from typing import Callable

from mmengine.registry import DefaultScope

__all__ = ['in_mmregion_scope']


def in_mmregion_scope(init: Callable) -> Callable:
    """Decorate ``__init__`` so that its builds resolve names in ``mmregion``.

    An mmregion algorithm named from another library's config, e.g.
    ``dict(type='mmregion.CCOP', ...)`` under ``default_scope='mmpretrain'``,
    is instantiated while the *caller's* scope is the default one, so its
    sub-modules (``type='LinearProjNeck'``) would be looked up in
    mmpretrain's registry and fail with ``KeyError``. Inside the decorated
    ``__init__`` the default scope is ``mmregion``, exactly as when the
    algorithm is built from ``configs/mmregion``; other libraries' modules
    keep their prefix (``'mmpretrain.ResNet'``, ``'mmdet.FPN'``). The
    caller's scope is restored afterwards.

    Args:
        init (Callable): The ``__init__`` to wrap.

    Returns:
        Callable: The wrapped ``__init__``.
    """

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        current = DefaultScope.get_current_instance()
        if current is not None and current.scope_name == 'mmregion':
            init(self, *args, **kwargs)
            return
        with DefaultScope.overwrite_default_scope('mmregion'):
            init(self, *args, **kwargs)

    return wrapper
