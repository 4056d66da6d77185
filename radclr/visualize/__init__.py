"""Figures: curves, t-SNE, radiomics panel, heatmap + box overlays.

Import the module you need (matplotlib is loaded only then):

* :mod:`~radclr.visualize.curves` -- ROC curves with bootstrap CI bands, loss curves (seed 000 Fig. 2),
  label-efficiency curves (seed 004 Fig. 2);
* :mod:`~radclr.visualize.embedding` -- t-SNE of features from several checkpoints (seed 003 Fig. 3);
* :mod:`~radclr.visualize.radiomics_panel` -- which radiomic features the image embedding predicts best;
* :mod:`~radclr.visualize.overlays` -- Grad-CAM heatmap + ground-truth / predicted boxes (seed 001 Fig. 5).

Every figure function returns a :class:`matplotlib.figure.Figure` (built without pyplot) and writes a PNG when
given ``path``.
"""
