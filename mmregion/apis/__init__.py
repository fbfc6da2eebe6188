"""What the command-line tools (``tools/``) use, not the training path.

- :mod:`.cli`: config loading, ``--cfg-options`` checks, one-line errors,
  launcher environments (``tools/train.py``, ``tools/test.py``, ...);
- :mod:`.checkpoint_convert`: renaming official checkpoints
  (``tools/model_converters/*_to_mmregion.py``);
- :mod:`.visualization`: drawing boxes (``tools/browse_proposals.py``,
  ``tools/analysis_tools/browse_views.py``);
- :mod:`.object_probe`: the k-NN object probe of
  ``tools/benchmark_transfer.py``.

Submodules are imported on use (``from mmregion.apis.cli import ...``);
the old ``mmregion.utils.<name>`` paths are aliases of these modules.
"""
