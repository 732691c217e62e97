"""Explainable, fairness-aware multimodal (image + text) deep learning, notebook-first

Modules:

- `xaimm_nb.data.core`: Multimodal datasets and fastai `DataLoaders`: tokenisation with word-level ground truth, resizing and normalisation, batches for explanations, stratified splits.
- `xaimm_nb.data.photos`: A small real-photo dataset for trying the whole study on data that is not SynthMM: scikit-image's bundled photos, augmented, with captions, boxes, rationales, a protected attribute and a planted artefact, written as a CSV.
- `xaimm_nb.data.sources`: Your own data as item sources: CSV/TSV and JSONL tables with your column names, image folders, COCO, Hugging Face datasets; the config's `data:` section and its train / valid / test splits.
- `xaimm_nb.data.synth`: SynthMM: a seeded, procedurally drawn image + caption benchmark with a protected attribute, a spurious artefact and ground-truth masks; numpy and PIL only.
- `xaimm_nb.data.vqa`: SynthMM-VQA: questions about each SynthMM image and caption whose answers need the image, the caption or both, with the regions and words that hold each answer; region boxes and frozen EfficientNet-Lite0 features for LXMERT.
- `xaimm_nb.explain.lime`: LIME for multimodal classifiers: superpixels and caption tokens switched off together, batched model calls, one kernel-weighted ridge surrogate, seeded end to end.
- `xaimm_nb.explain.store`: Dataset-scale explanation: every sample of a split explained in shards, maps as float16 safetensors, scores as Parquet rows per sample × method; finished shards skipped, ranks of `torch.distributed` on disjoint shards.
- `xaimm_nb.explain.vlm_dual`: Adapters that give HF `CLIPModel`, `SiglipModel` and `BlipForImageTextRetrieval` the VLM explanation protocol of `explain.vlm`: attention events recorded by hooks, physical token removal, the token layout and the score to explain.
- `xaimm_nb.metrics.gen`: Metrics for generated images: FID and KID on pluggable features, SSIM, memorisation and diversity checks, fairness discrepancy, conditional accuracy.
- `xaimm_nb.metrics.vlm`: The perturbation test of Chefer et al. (ICCV 2021) and DSMI on vision-language models: image and text tokens physically dropped by relevance, answer accuracy after each step, the area under the curve; plus pointing and IoU against SynthMM-VQA's ground truth.
- `xaimm_nb.test_utils`: Tiny synthetic batches, models and a Learner that keep every notebook's tests in seconds: random initialisation, no downloads, seeded.
- `xaimm_nb.vqa_study`: The DSMI seed's table reproduced on SynthMM-VQA: a tiny LXMERT and a tiny ViLT (the Hugging Face classes) trained on the CPU, every attention method explained through `explain.vlm`, the four perturbation tests against random, pointing and IoU against the ground truth, and the time of each method against one forward + backward."""

__version__ = "0.0.1"
