"""The transfer benchmark's stages (``tools/benchmark_transfer.py``), one
concept per module; the protocol itself is a config file in
``configs/protocols/``.

- :mod:`.runner`: loading a protocol, resumable stages, subprocesses;
- :mod:`.data`: the data set, its dev/test split, the pre-training boxes;
- :mod:`.pretrain`: one pre-training run under the shared conditions;
- :mod:`.probe`: the region-level linear probe (and k-NN) of a backbone;
- :mod:`.detect`: anchor coverage and one detection run;
- :mod:`.stats`: paired tests, Welch's t, the gate, claim verdicts;
- :mod:`.benchmark`: the plan of a protocol's stages;
- :mod:`.report`: the JSON / Markdown / PNG report.

Submodules are imported on use.
"""
