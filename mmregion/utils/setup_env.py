import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmregion sub-package so that all modules are registered.

    Args:
        init_default_scope (bool): Also set the default scope to ``mmregion``
            (a new ``DefaultScope`` instance when another scope is current).
            Defaults to True.
    """
    import mmregion.datasets  # noqa: F401,F403
    import mmregion.engine  # noqa: F401,F403
    import mmregion.models  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('mmregion')
    if never_created:
        DefaultScope.get_instance('mmregion', scope_name='mmregion')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmregion':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmregion", '
                      '`register_all_modules` will force the current '
                      'default scope to be "mmregion".')
        new_instance_name = f'mmregion-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmregion')


def register_config_package() -> None:
    """Let mmengine resolve ``mmregion::`` config paths.

    mmengine 0.10.x only resolves ``_base_ = 'PKG::path.py'`` for packages in
    its fixed ``MODULE2PACKAGE`` table, and then reads
    ``<installed PKG>/.mim/configs/path.py``. mmregion's wheel ships that
    folder (setup.py); this adds ``mmregion`` to the table, so any process
    that has imported mmregion (our tools, ``mim train mmregion``, a script
    with ``import mmregion``) can inherit
    ``'mmregion::mmregion/ccop_r50_coco.py'``. Idempotent.
    """
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('mmregion', 'mmregion')
