"""Explainable, fairness-aware multimodal (image + text) deep learning, notebook-first

Modules:

- `xaimm_nb.data.core`: Multimodal datasets and fastai `DataLoaders`: tokenisation with word-level ground truth, resizing and normalisation, batches for explanations, stratified splits.
- `xaimm_nb.data.photos`: A small real-photo dataset for trying the whole study on data that is not SynthMM: scikit-image's bundled photos, augmented, with captions, boxes, rationales, a protected attribute and a planted artefact, written as a CSV.
- `xaimm_nb.data.sources`: Your own data as item sources: CSV/TSV and JSONL tables with your column names, image folders, COCO, Hugging Face datasets; the config's `data:` section and its train / valid / test splits.
- `xaimm_nb.data.synth`: SynthMM: a seeded, procedurally drawn image + caption benchmark with a protected attribute, a spurious artefact and ground-truth masks; numpy and PIL only.
- `xaimm_nb.explain.lime`: LIME for multimodal classifiers: superpixels and caption tokens switched off together, batched model calls, one kernel-weighted ridge surrogate, seeded end to end.
- `xaimm_nb.metrics.gen`: Metrics for generated images: FID and KID on pluggable features, SSIM, memorisation and diversity checks, fairness discrepancy, conditional accuracy.
- `xaimm_nb.test_utils`: Tiny synthetic batches, models and a Learner that keep every notebook's tests in seconds: random initialisation, no downloads, seeded."""

__version__ = "0.0.1"
