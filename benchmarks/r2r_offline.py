"""Reveal-to-Revise on the `offline` preset (pretrained EfficientNet-Lite0 + MiniLM) over seeds: the table in 10a's
"Measured" section.

    python benchmarks/r2r_offline.py OUT [seeds=0,1,2] [size=64 epochs=3 lr=0.001 lam_rrr=0.1 ...]

For each seed: trains the base model (R2RConfig's defaults with the settings above), then one
revision round of P-ClArC, RR-ClArC, RRR and the fine-tuning control on the same subsets (16 training batches, 4 of
reveal and of each evaluation split, batch 64: 1024 / 256 images) and writes OUT/off_s{seed}_r2r.json (diagnosis included). Then prints the 3-seed
table (mean ± 95 % t-interval) and the paired differences to the control, as `benchmarks/r2r.py` does. One thread.
"""
import os, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from dataclasses import replace
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from r2r import table, ci, KEYS
from xaimm_nb.core import set_seed, from_dict, apply_overrides, save_json, load_json
from xaimm_nb.fairness.r2r import R2RConfig, EVAL_SPLITS, r2r, to_batches, _base_model
from xaimm_nb.data.synth import SynthConfig
from xaimm_nb.data.core import get_tokenizer, synth_datasets, synth_dataloaders
from xaimm_nb.models.fusion import build_model

def run_seed(cfg):
    "Base model + one revision round of every method for `cfg` (its seed)."
    set_seed(cfg.seed)
    model = build_model(cfg.preset, n_classes=cfg.n_classes, **({'size': cfg.size} if cfg.size else {}))
    p = model.preset
    sc = SynthConfig(n_classes=cfg.n_classes, size=p['size'], task=cfg.task, rho_ys=cfg.rho_ys, rho_ya=cfg.rho_ya,
                     artefact_class=cfg.artefact_class, seed=cfg.seed, n_train=cfg.n_train, n_valid=cfg.n_eval,
                     **{f'n_{s}': cfg.n_eval for s in EVAL_SPLITS})
    tok = get_tokenizer(p['tokenizer'], pad_to='longest')
    dls = synth_dataloaders(sc, tok, p['size'], cfg.bs, p['mean'], p['std'], cfg.seed, 'cpu')
    t = time.time(); model = _base_model(cfg, model, dls, False); t_base = time.time() - t
    dss = synth_datasets(sc, tok, p['size'], p['mean'], p['std'], splits=('train',) + EVAL_SPLITS)
    B = {sp: to_batches(ds, cfg.bs) for sp, ds in dss.items()}
    B['reveal'] = to_batches(dss['train'], cfg.bs, cfg.n_reveal)
    data = dict(train=B['train'][:16], reveal=B['reveal'][:4],
                **{sp: B[sp][:4] for sp in ('test', 'clean', 'conflict', 'attacked')})
    t = time.time(); res = r2r(model, data, replace(cfg, max_rounds=1, extra={}))
    res.update(seconds=time.time() - t, base_seconds=t_base)
    return res

if __name__ == '__main__':
    args = sys.argv[1:]; out = Path(args.pop(0)); out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for a in args if a.startswith('seeds=') for s in a[6:].split(',')] or [0, 1, 2]
    args = [a for a in args if not a.startswith('seeds=')]
    base = dict(preset='offline', size=64, epochs=3, lr=1e-3, lam_rrr=.1)
    torch.set_num_threads(1)
    files = []
    for s in seeds:
        f = out/f'off_s{s}_r2r.json'; files.append(f)
        if f.exists(): print(f'seed {s}: {f} exists, kept'); continue
        cfg = from_dict(R2RConfig, apply_overrides(dict(base, seed=s), args))
        save_json(f, run_seed(cfg)); print(f'seed {s}: {f}')
    res = [load_json(f) for f in files]
    t = table(res)
    print('| | ' + ' | '.join(KEYS.values()) + ' |')
    for (m, k), rows in t.items():
        if k in (0, 'final'): print(f"| {m} | " + ' | '.join(ci([r[x] for r in rows]) for x in KEYS) + ' |')
    for m in ('rrclarc', 'rrr', 'pclarc'):
        d = [{x: r[x] - c[x] for x in KEYS} for r, c in zip(t[(m, 'final')], t[('finetune', 'final')])]
        print(f"| {m} − control | " + ' | '.join(ci([r[x] for r in d]) for x in KEYS) + ' |')
