"""Contrastive and classification losses (one small module per file; SPEC §2).

* :class:`BidirectionalContrastiveLoss` -- seed 000 eqs. (1)-(3), image<->radiomics, negative p-norm distance.
* :class:`NTXentLoss` -- seed 003 eq. (4), SimCLR over 2B views.
* :class:`CrossModalNTXentLoss` -- seed 001 §3.3, image anchor / radiomics positive / hard image negatives.
* :class:`MemoryBankInfoNCELoss` -- seed 004 §2.2, InfoNCE both ways against two memory banks.
* :class:`FocalLoss` -- seed 001 §3.3, multi-label, NaN labels masked.
"""

from radclr.losses.bidirectional import BidirectionalContrastiveLoss, pairwise_similarity
from radclr.losses.cross_modal import CrossModalNTXentLoss
from radclr.losses.focal import FocalLoss
from radclr.losses.memory_bank import MemoryBankInfoNCELoss
from radclr.losses.ntxent import NTXentLoss

__all__ = ["BidirectionalContrastiveLoss", "pairwise_similarity", "NTXentLoss", "CrossModalNTXentLoss",
           "MemoryBankInfoNCELoss", "FocalLoss"]
