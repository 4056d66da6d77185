"""Training methods: small classes over shared parts and losses (see base.py).

=====================  ========  ============================================================
name                   seed      what it trains
=====================  ========  ============================================================
supervised             000/004   encoder + classifier (BCE or focal); baseline, fine-tuning, FC probe
radiomics_contrastive  000       image<->radiomics bidirectional contrastive pretraining
byop                   001       focal + cross-modal NT-Xent with the Grad-CAM->box->radiomics loop
simclr                 003       SimCLR NT-Xent over two CXR-safe augmentations
correspondence         004       radiomics-deep correspondence, InfoNCE with two memory banks
hybrid                 004       image + radiomics branches -> FC (fine-tuned hybrid network)
=====================  ========  ============================================================

Importing this package registers every method for :func:`method_class`.
"""

from radclr.methods import byop, correspondence, radiomics_contrastive, simclr, supervised  # noqa: F401 (register)
from radclr.methods.base import Method, MethodContext, method_class
from radclr.methods.options import MethodOptions

__all__ = ["Method", "MethodContext", "MethodOptions", "method_class"]
