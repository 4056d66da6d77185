"""Runs as a user handles them: train a configuration into a run directory and evaluate it
(:func:`train`), open a finished run (:func:`load_run`), evaluate it on its own or other data
(:func:`evaluate_run`), patient-wise k-fold cross-validation and label-fraction sweeps."""

from radclr.runs.evaluate import evaluate_run
from radclr.runs.run import LoadedRun, load_run
from radclr.runs.train import train

__all__ = ["LoadedRun", "evaluate_run", "load_run", "train"]
