"""Why Grad-CAM++'s pointing game on SynthMM depends on the CAM layer: where the map's maximum lands, per layer.

    python benchmarks/cam_pointing.py RUN_DIR [--n 128] [--split test] [--layers name,name,...]

RUN_DIR is a finished `xaimm run` / `xaimm train` folder (its config.yaml and models/best.pt; `./run.sh` writes runs/default).
For each layer it explains the first n samples of the split with Grad-CAM++ for the true class and prints
- where the maximum pixel of the (upsampled) map lands: object / artefact / protected band / background;
- the pointing game on the object mask: strict (quantus: the maximum inside the mask), with the 15-pixel tolerance of
  Zhang et al., and at the layer's own cell resolution (does the most relevant feature-map cell contain object pixels?);
- the classifier's accuracy on these samples, and each mask's share of the image for scale.
Nothing is written; the run folder is only read.
"""
import argparse, os
from pathlib import Path
from types import SimpleNamespace
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import torch, torch.nn.functional as F
from xaimm_nb.core import load_yaml
from xaimm_nb.pipeline import parse_config, load_classifier
from xaimm_nb.data.core import synth_datasets
from xaimm_nb.explain.core import explain, hooks
from xaimm_nb.metrics import pointing_game

REGIONS = ('object', 'artefact', 'protected', 'background')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('run'); ap.add_argument('--n', type=int, default=128); ap.add_argument('--split', default='test')
    ap.add_argument('--layers', default=None, help="comma-separated module names (default: the CAM default layer and the last three EfficientNet stages)")
    ap.add_argument('--bs', type=int, default=16)
    a = ap.parse_args()
    P = Path(a.run)
    if not (P/'config.yaml').exists(): raise SystemExit(f"{P}/config.yaml not found: pass a finished run folder (./run.sh writes runs/default)")
    cfg = parse_config(load_yaml(P/'config.yaml'))
    model, tok, dc = load_classifier(cfg, SimpleNamespace(path=P, models=P/'models'))
    p = model.preset
    ds = synth_datasets(dc, tok, p['size'], p['mean'], p['std'], splits=(a.split,))[a.split]
    n = min(a.n, len(ds))
    batches = [ds.batch(range(s, min(s + a.bs, n))) for s in range(0, n, a.bs)]
    names = {k for k, _ in model.named_modules()}
    layers = a.layers.split(',') if a.layers else [explain(model, batches[0], 'gradcampp').meta['layer']] + \
        [k for k in (f'image_encoder.backbone.blocks.{i}' for i in (6, 5, 4)) if k in names]
    with torch.no_grad():
        acc = torch.cat([(model(b['images'], b['input_ids'], b['attention_mask']).argmax(1) == b['y']).float() for b in batches]).mean()
    S = batches[0]['images'].shape[-1]
    print(f"{n} {a.split} samples at {S}x{S}; classifier accuracy on them {acc:.3f}")
    print('mask share of the image:', {k: round(float(torch.cat([b['masks'][k] for b in batches]).float().mean()), 3) for k in REGIONS})
    print(f"{'layer':34s} {'map':>5s} | max lands in: " + ' '.join(f'{k:>10s}' for k in REGIONS) + " | pointing: strict   15 px   cell")
    b0 = batches[0]
    for layer in layers:
        side = {}  # the layer's grid: one forward of one sample; a cell is (input side / grid side) pixels
        with torch.no_grad(), hooks(model.get_submodule(layer), forward=lambda m, i, o: side.update(g=o.shape[-1])):
            model(b0['images'][:1], b0['input_ids'][:1], b0['attention_mask'][:1])
        g = side['g']; c = S // g
        land, pg, pg15, cell = {k: [] for k in REGIONS}, [], [], []
        for b in batches:
            e = explain(model, b, 'gradcampp', target=b['y'], layer=layer)
            am = e.image.flatten(1).argmax(1)[:, None]
            for k in REGIONS: land[k].append(b['masks'][k].flatten(1).gather(1, am)[:, 0].float())
            ob = b['masks']['object']
            pg.append(pointing_game(e.image, ob)); pg15.append(pointing_game(e.image, ob, 15))
            top = F.avg_pool2d(e.image[:, None], c)[:, 0].flatten(1).argmax(1)[:, None]
            cell.append(F.max_pool2d(ob[:, None].float(), c)[:, 0].flatten(1).gather(1, top)[:, 0])
        m = lambda v: float(torch.cat(v).nanmean())
        print(f"{layer:34s} {g:>2d}x{g:<2d} | {'':13s}" + ' '.join(f'{m(land[k]):10.3f}' for k in REGIONS) +
              f" | {'':9s}{m(pg):.3f}   {m(pg15):.3f}   {m(cell):.3f}")

if __name__ == '__main__': main()
