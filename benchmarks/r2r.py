"""Reveal to Revise acceptance run: does revising remove a strong spurious artefact (rho_ya = 0.95) from a trained model?

    python benchmarks/r2r.py [run_dir] [key=value ...]     # e.g. methods=[rrclarc] lam_rrclarc=10

Trains the `tiny` preset on SynthMM (4 shapes, 32x32, 2000 training images, the corner tag on 95% of class 0 and
5% of the rest), runs `run_r2r` (P-ClArC, RR-ClArC, RRR and the plain fine-tuning control) and prints, per method,
the unrevised ("before") and final revised ("after") conflict accuracy, attacked accuracy, test Delta-bias and attacked
artefact relevance, with PASS when all four improve. Writes results/r2r.json and visualizations/r2r_rounds.png under
run_dir (default runs/bench_r2r). One thread: a few CPU minutes.
"""
import os, sys, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
import torch
from xaimm_nb.core import apply_overrides
from xaimm_nb.fairness.r2r import run_r2r

KEYS = dict(conflict_acc='conflict acc ↑', attacked_acc='attacked acc ↑', delta_bias='Δbias test ↓', art_rel='art. rel. attacked ↓')

if __name__ == '__main__':
    torch.set_num_threads(1)
    args = sys.argv[1:]
    run_dir = args.pop(0) if args and '=' not in args[0] else 'runs/bench_r2r'
    t = time.time()
    res = run_r2r(apply_overrides({}, args), run_dir)
    print(f"R2R on SynthMM, rho_ya={res['config']['rho_ya']}, preset={res['config']['preset']}: {time.time() - t:.0f} s, results in {run_dir}")
    print(f"{'method':10s} {'round':>5s} " + ' '.join(f'{v:>22s}' for v in KEYS.values()) + '  verdict')
    for m, r in res['methods'].items():
        cells = ' '.join(f"{r['before'][k]:9.3f} → {r['after'][k]:6.3f} {'✓' if r['better'][k] else '✗'}    " for k in KEYS)
        print(f"{m:10s} {r['final_round']:5d} {cells}  {'PASS' if r['helped'] else 'no help'}")
    sp = res['base']['reveal']['spray']
    print(f"SpRAy on the unrevised model: k={sp['k']}, artefact cluster purity {sp['purity']:.2f} (base rate {sp['base_rate']:.2f}), "
          f"recall {sp['recall']:.2f}, ARI {sp['ari']:.2f}: {'recovered' if sp['recovered'] else 'not recovered'}")
