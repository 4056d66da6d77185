"""radclr — label-efficient, interpretable chest X-ray classification and localization.

Deep image features are trained to agree with radiomic features of the same region (a contrastive
"second view" carrying radiologists' prior knowledge).

Package map, bottom-up along the data path (a package imports only from the ones listed above it):

    errors.py       user-facing errors (one line on the command line, no traceback)
    safe_write.py   writing outputs safely: writable-folder checks, atomic writes, disk-full as a message
    ranges.py       the ranges of numbers users give (config keys, command-line options), checked in one place
    yamlfile.py     reading a user's YAML strictly: a key given twice, a binary file -> one error naming the file
    progress.py     progress: a tqdm bar on a terminal, periodic log lines when output goes to a file or pipe
    boxes.py        box geometry: IoU, clipping, scaling between pixel grids, the one box -> pixels rule
    io/             image files -> float32 arrays (+ pixel spacing): PNG/JPEG, DICOM, NIfTI/NRRD
    data/           datasets (one interface for every layout), splits, phantoms, validation, disease hierarchy
    ops/            batched torch building blocks (connected components, indexing)
    radiomics/      PyRadiomics-exact batched torch engine, PyRadiomics backend, cache, region -> radiomics service
    transforms/     CXR-safe augmentations, ROI crops
    networks/       image encoders (MONAI), radiomics encoder, projection heads, classifier
    losses/         contrastive and classification losses
    cam/            Grad-CAM, CAM -> boxes, CAM options, CAM-threshold calibration (the BYOP box half)
    evaluation/     metrics with bootstrap CIs, thresholds, linear evaluation, localization accuracy
    visualize/      figures: overlays (seed 001 Fig. 5), curves, t-SNE, radiomics panels
    runtime/        device choice, mixed precision, determinism, DDP collectives, TensorBoard events
    training_data/  a run's prepared data: split, image store, 3-D stacks, fixed-region radiomics, sample views
    methods/        training methods as small classes over losses and heads (supervised, radiomics_contrastive,
                    byop, simclr, correspondence, hybrid)
    engine/         configuration, the one training loop (calls the hooks methods declare), checkpoints, inference
    runs/           run directories: train + evaluate, several seeds, k-fold CV, label fractions, loading a run
    predict.py      new images -> probabilities, Grad-CAM box, the box's radiomics and why
    report/         tables in the papers' layouts and the one-page HTML report
    doctor.py       `radclr doctor`: the environment report (torch build, GPUs, packages, cache space)
    demo.py         `radclr demo`: train, evaluate and report on the embedded sample
    cli/            the `radclr` command (a thin layer over the above)
"""

__version__ = "0.1.0"
