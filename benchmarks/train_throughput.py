"""Training throughput: the fastai Learner of `xaimm_nb.train.mm_learner` vs a plain PyTorch loop.

Same model (copies of one initialisation), same DataLoader (same batches, same order), same optimizer
(torch AdamW, constant learning rate), same loss (cross-entropy; lam_bias=0). Only the training phase is timed
(fastai: before_train -> after_train; plain: the loop over the same DataLoader), after one warm-up pass each, in
alternating repetitions; the median samples/s of each is reported with the ratio fastai / plain (target >= 0.9).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py                  # the default run: offline preset, 64-px SynthMM read at 128
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_throughput.py --preset tiny --data-size 32
"""
import argparse, copy, os, statistics, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import torch, torch.nn.functional as F
from fastai.callback.core import Callback
from xaimm_nb.core import set_seed
from xaimm_nb.data.synth import SynthConfig
from xaimm_nb.data.core import get_tokenizer, synth_dataloaders
from xaimm_nb.models.encoders import freeze
from xaimm_nb.models.fusion import build_model
from xaimm_nb.train import mm_learner

class TrainTimer(Callback):
    "Wall time of the training phase of each epoch."
    order = 100
    def before_train(self): self.t = time.perf_counter()
    def after_train(self): self.learn.train_seconds = time.perf_counter() - self.t

def plain_epoch(model, dl, opt):
    "One epoch of the textbook loop; returns its wall time."
    model.train(); t = time.perf_counter()
    for images, ids, am, y, s in dl:
        loss = F.cross_entropy(model(images, ids, am), y)
        loss.backward(); opt.step(); opt.zero_grad()
    return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='offline'); ap.add_argument('--size', type=int, default=None, help="model input side (default: the preset's)")
    ap.add_argument('--data-size', type=int, default=64, help='SynthMM image side (32, 64, 128 or 224)')
    ap.add_argument('--bs', type=int, default=64); ap.add_argument('--batches', type=int, default=12)
    ap.add_argument('--reps', type=int, default=3); ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    set_seed(0)
    m0 = build_model(a.preset, 4, **({} if a.size is None else dict(size=a.size)))
    size = m0.preset['size']
    if a.preset != 'tiny': freeze(m0.image_encoder, 'but_last'); freeze(m0.text_encoder, 'all')
    dc = SynthConfig(size=a.data_size, n_train=a.bs*a.batches, n_valid=a.bs)
    tok = get_tokenizer(m0.preset['tokenizer'], pad_to='longest')
    dls = synth_dataloaders(dc, tok, size, a.bs, mean=m0.preset['mean'], std=m0.preset['std'])
    n = len(dls.train) * a.bs
    fa_model, pl_model = copy.deepcopy(m0), copy.deepcopy(m0)
    learn = mm_learner(dls, fa_model, lr=a.lr, wd=1e-2, cbs=TrainTimer(), progress=False)
    opt = torch.optim.AdamW([p for p in pl_model.parameters() if p.requires_grad], lr=a.lr, weight_decay=1e-2)
    learn.fit(1, a.lr); plain_epoch(pl_model, dls.train, opt)                     # warm-up
    fa, pl = [], []
    for _ in range(a.reps):
        learn.fit(1, a.lr); fa.append(n / learn.train_seconds)
        pl.append(n / plain_epoch(pl_model, dls.train, opt))
    f, p = statistics.median(fa), statistics.median(pl)
    print(f"preset={a.preset} size={size} (data {a.data_size}) bs={a.bs} batches/epoch={len(dls.train)} reps={a.reps} threads={torch.get_num_threads()} "
          f"load={os.getloadavg()[0]:.1f}")
    print(f"fastai Learner : {f:8.1f} samples/s  (reps: {', '.join(f'{v:.1f}' for v in fa)})")
    print(f"plain PyTorch  : {p:8.1f} samples/s  (reps: {', '.join(f'{v:.1f}' for v in pl)})")
    print(f"ratio fastai/plain = {f/p:.3f}  (target >= 0.9)")

if __name__ == '__main__': main()
