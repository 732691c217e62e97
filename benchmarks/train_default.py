"""The default classifier run on SynthMM (offline preset, CPU) and its ablations, one seed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_default.py [--lam 1.0] [--only fused,bias,image,text] [--out runs/bench-train]

Variants (same seed, data, schedule; `TrainConfig` defaults unless --set overrides them):
  fused  cross-modal attention fusion, lam_bias = 0          (the default run: target >= 95 % test accuracy in <= 10 min)
  bias   the same with lam_bias = --lam                      (conflict accuracy and Δbias vs `fused`)
  image  image tower only  (mode='image')
  text   text tower only   (mode='text')                     (fused must beat both)
Prints one row per variant: test / conflict accuracy, Δbias, worst-group accuracy, fit and wall seconds, the process
CPU seconds, and the machine's load average (other jobs on a shared machine slow the wall time down).
Each variant writes a normal run directory under --out; results/metrics.json holds everything printed here.
"""
import argparse, json, os, resource, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
from pathlib import Path
import torch
from xaimm_nb.core import apply_overrides
from xaimm_nb.train import train_classifier

BASE = dict(seed=0, device='cpu', data=dict(size=64), model=dict(preset='offline'), train=dict(progress=False))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--lam', type=float, default=1.)
    ap.add_argument('--only', default='fused,bias,image,text')
    ap.add_argument('--out', default='runs/bench-train')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's choice; 1 is faster on a machine shared with other jobs)")
    ap.add_argument('--set', dest='overrides', nargs='*', default=[], help='config overrides for every variant, e.g. train.epochs=4')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    variants = dict(fused={}, bias={'train': {'lam_bias': a.lam}}, image={'model': {'mode': 'image'}}, text={'model': {'mode': 'text'}})
    rows = {}
    for name in a.only.split(','):
        cfg = apply_overrides(BASE, a.overrides)
        for sec, kv in variants[name].items(): cfg[sec] = {**cfg[sec], **kv}
        t, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
        r = train_classifier(cfg, Path(a.out)/name)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        rows[name] = dict(test_acc=r['test']['accuracy'], conflict_acc=r['conflict']['accuracy'], test_dbias=r['test']['delta_bias'],
                          conflict_dbias=r['conflict']['delta_bias'], test_wga=r['test']['worst_group_acc'], fit_s=r['fit_seconds'],
                          wall_s=round(time.time() - t, 1), cpu_s=round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1),
                          load=round(os.getloadavg()[0], 1))
        print(name, json.dumps(rows[name]), flush=True)
    print(f"\nthreads={torch.get_num_threads()}")
    print(f"{'variant':8} {'test':>6} {'confl':>6} {'Δb test':>8} {'Δb conf':>8} {'wga':>6} {'fit s':>7} {'wall s':>7} {'cpu s':>7} {'load':>5}")
    for n, r in rows.items():
        print(f"{n:8} {r['test_acc']:6.3f} {r['conflict_acc']:6.3f} {r['test_dbias']:8.3f} {r['conflict_dbias']:8.3f} {r['test_wga']:6.3f} "
              f"{r['fit_s']:7.1f} {r['wall_s']:7.1f} {r['cpu_s']:7.1f} {r['load']:5.1f}")

if __name__ == '__main__': main()
