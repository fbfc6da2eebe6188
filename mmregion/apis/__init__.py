"""What the command-line tools (``tools/``) use, not the training path.

- :mod:`.cli`: config loading, ``--cfg-options`` checks, one-line errors,
  launcher environments (``tools/train.py``, ``tools/test.py``, ...);
- :mod:`.checkpoint_convert`: renaming official checkpoints
  (``tools/model_converters/*_to_mmregion.py``);
- :mod:`.visualization`: drawing boxes (``tools/browse_proposals.py``,
  ``tools/analysis_tools/browse_views.py``);
- :mod:`.object_probe`: a k-NN object probe of a frozen backbone (its
  COCO box reading is shared with :mod:`.transfer.probe`);
- :mod:`.transfer`: the stages of ``tools/benchmark_transfer.py`` (the
  transfer benchmark's protocol, probe, detection, statistics, report).

Submodules are imported on use (``from mmregion.apis.cli import ...``).
"""
