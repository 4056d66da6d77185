"""Image encoders, radiomics encoder, projection heads and the linear classifier (SPEC §1 "Encoders and heads")."""

from radclr.networks.encoders import DenseNetEncoder, ImageEncoder, ResNetEncoder
from radclr.networks.factory import ENCODERS, build_image_encoder
from radclr.networks.heads import LinearClassifier, ProjectionHead, simclr_projection_head
from radclr.networks.radiomics import RadiomicsEncoder, Standardizer
from radclr.networks.weights import load_encoder_weights

__all__ = [
    "ENCODERS", "ImageEncoder", "ResNetEncoder", "DenseNetEncoder", "build_image_encoder", "load_encoder_weights",
    "ProjectionHead", "simclr_projection_head", "LinearClassifier", "Standardizer", "RadiomicsEncoder",
]
