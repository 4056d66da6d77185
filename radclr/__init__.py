"""radclr — label-efficient, interpretable chest X-ray classification and localization.

Deep image features are trained to agree with radiomic features of the same region (a contrastive
"second view" carrying radiologists' prior knowledge). Package map, top-down along the data path:

    io/          image files -> float32 arrays (+ pixel spacing)
    data/        datasets (one interface for every layout), splits, phantoms, validation
    radiomics/   batched torch radiomics engine (PyRadiomics-exact) + PyRadiomics backend
    transforms/  CXR-safe augmentations
    networks/    image encoders, radiomics encoder, projection heads, classifier
    losses/      contrastive and classification losses
    methods/     M1..M4 and supervised baselines as small classes over losses/heads
    engine/      one training loop: config, checkpoints, resume, DDP
    cam/         Grad-CAM and CAM -> boxes (the BYOP loop)
    evaluation/  metrics with bootstrap CIs, linear evaluation, localization
    visualize/   figures;  report/  the HTML report
    cli/         the `radclr` command (thin layer over the above)
"""

__version__ = "0.1.0"
