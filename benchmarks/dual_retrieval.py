"""Contrastive DualEncoder on SynthMM: training time, retrieval recall@1 and how well attention maps point at the object.

    python benchmarks/dual_retrieval.py [--epochs 20] [--n-train 5000] [--depth 4] [--width 64] [--preset tiny] [--device cpu]

Trains `train_dual(DualConfig(...))` (task 'redundant' captions that name the shape), then on the first 1000 SynthMM test
pairs ranks every image against the 100 captions of its block (10 disjoint blocks of 100 consecutive pairs) and every
caption against the 100 images: recall@1 i2t / t2i. Chance is 0.01. The ceiling is the recall of an oracle that sees
everything visible but must guess among captions that differ only in the (invisible) material word: mean 1/#same.
Then explains 200 test pairs (target: the pair's logit) with chefer / rollout and reports the pointing game against
the object mask (chance: the mean object area, printed too). Runs on ONE thread: on a machine shared with other jobs,
torch's multi-threaded kernels were measured 5-10x slower than one thread.
"""
import argparse, os, time
os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from collections import Counter
import torch
from xaimm_nb.data.synth import MATERIALS, SynthConfig, SynthMM
from xaimm_nb.models.dual import DualConfig, train_dual, dual_data, retrieval_recall
from xaimm_nb.explain.core import explain
from xaimm_nb.metrics import pointing_game


def ceiling(captions, block=100):
    "Recall@1 of an oracle that can tell every visible attribute but not the material word."
    key = [' '.join(w for w in c.split() if w not in MATERIALS) for c in captions]
    r = [1/Counter(key[j:j+block])[k] for j in range(0, len(key) - block + 1, block) for k in key[j:j+block]]
    return sum(r) / len(r)


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=20); p.add_argument("--n-train", type=int, default=5000)
    p.add_argument('--depth', type=int, default=4); p.add_argument('--width', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3); p.add_argument('--preset', default='tiny')
    p.add_argument('--device', default='cpu'); p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    cfg = DualConfig(preset=a.preset, n_train=a.n_train, epochs=a.epochs, depth=a.depth, width=a.width, lr=a.lr, seed=a.seed)
    print(cfg, f'threads={torch.get_num_threads()}')
    t = time.time(); model, hist = train_dual(cfg, a.device); tt = time.time() - t
    print(f'training: {tt:.1f} s ({tt/cfg.epochs:.2f} s/epoch), final loss {hist[-1]:.3f}, tau {1/model.scale.item():.4f}')
    test = dual_data(cfg, model, 'test', 1000)
    t = time.time(); r = retrieval_recall(model, test, 100)
    caps = SynthMM(SynthConfig(n_classes=cfg.n_classes, size=cfg.size, task='redundant', seed=cfg.seed, n_test=1000), 'test').arrays()['captions']
    print(f"retrieval over {r['n_queries']} test pairs in blocks of {r['n_candidates']}: recall@1 i2t {r['i2t']:.3f}, t2i {r['t2i']:.3f} "
          f"(chance 0.010, ceiling {ceiling(caps):.3f}; {time.time()-t:.1f} s)")
    b = test.batch(range(200))
    print(f"object area (pointing-game chance): {b['masks']['object'].float().mean().item():.3f}")
    for m in ('chefer', 'rollout'):
        t = time.time(); e = explain(model, b, m)
        pg = pointing_game(e.image, b['masks']['object']).nanmean().item()
        print(f'{m}: pointing game {pg:.3f} on 200 test pairs ({(time.time()-t)*1000/200:.1f} ms/pair)')
