"""The training engine: configuration (:mod:`~radclr.engine.config`), the one training loop
(:mod:`~radclr.engine.loop`), checkpoints, optimisers and schedules, and eval-mode inference.

Methods never import this package: the loop calls the hooks :class:`radclr.methods.Method` declares.
Run-level orchestration (train + evaluate, several seeds, k-fold CV, label fractions, loading a run directory)
is :mod:`radclr.runs`.
"""
