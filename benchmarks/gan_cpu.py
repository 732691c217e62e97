"""Acceptance run of the conditional attention WGAN-GP on CPU: SynthMM 32x32, the default `WGANConfig`, trained twice at
the same seed, without (mu=0) and with the bias regulariser (mu=MU).

    python benchmarks/gan_cpu.py [OUT_DIR] [--mu MU] [--steps N] [--threads T] [--device cuda]

On a GPU (`--device cuda`) this is the SynthMM GPU recipe of issue #22 (the default WGANConfig: width 64, n_critic 5,
2000 steps); #6 asks for a conditional accuracy of at least 0.8 there.

Prints, for each run: GAN training time (wall and process CPU, classifiers excluded), the FID curve (SynthMM
features), the final conditional accuracy (target >= 0.80: PASS/BELOW), and the fairness discrepancy of the
generated vs real attribute distribution; then whether FD(mu>0) < FD(mu=0). Runs and their artefacts stay in OUT_DIR
(default /tmp/xaimm_gan_cpu); an existing run folder is resumed, so rerunning only prints.
"""
import argparse, os, shutil, time
from pathlib import Path
import torch
from xaimm_nb.data.synth import SynthConfig, SynthMM
from xaimm_nb.gan import WGANConfig, train_wgan

def run(out, data, **kw):
    t, c = time.time(), time.process_time()
    r = train_wgan(WGANConfig(**kw), data, out)
    return r, time.time() - t, time.process_time() - c

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('out', nargs='?', default='/tmp/xaimm_gan_cpu')
    ap.add_argument('--mu', type=float, default=10.)
    ap.add_argument('--steps', type=int, default=WGANConfig.steps)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='auto', help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    data = SynthMM(SynthConfig(size=32, n_train=4000), 'train').arrays()
    res = {}
    for mu in (0., a.mu):
        d = out/f'mu{mu:g}'
        if mu and not (d/'models').exists() and (out/'mu0'/'models'/'synth_clf.pt').exists():  # same data and seed: reuse the classifiers
            (d/'models').mkdir(parents=True)
            for f in ('synth_clf.pt', 'attr_clf.pt'): shutil.copy(out/'mu0'/'models'/f, d/'models'/f)
        r, wall, cpu = run(d, data, steps=a.steps, mu=mu, device=a.device)
        res[mu] = r.metrics
        print(f"\n== mu={mu:g}: {d}  (this call: {wall:.0f} s wall, {cpu:.0f} s CPU; GAN loop incl. evaluations: "
              f"{r.metrics['train_time_s']:.0f} s wall over {r.metrics['step']} steps)")
        print("FID curve (SynthMM features): " + ', '.join(f"{h['step']}: {h['fid_synthmm']:.2f}" for h in r.history))
        print("cond. accuracy curve:        " + ', '.join(f"{h['step']}: {h['conditional_accuracy']:.3f}" for h in r.history))
        m = r.metrics
        print(f"classifier held-out acc {m['classifier_acc']:.3f}, attribute classifier {m['attr_clf_acc']:.3f}")
        print(f"final: fid {m['fid_synthmm']:.2f}  kid {m['kid_synthmm']:.3f}±{m['kid_synthmm_std']:.3f}  ssim_nearest {m['ssim_nearest']:.3f}  "
              f"diversity {m['diversity']:.3f} (real {m['diversity_real']:.3f})")
        print(f"conditional accuracy {m['conditional_accuracy']:.3f} (target >= 0.80): {'PASS' if m['conditional_accuracy'] >= .8 else 'BELOW'}")
        print(f"fairness discrepancy FD-L2 {m['fairness_discrepancy']:.4f} (per class {m['fd_l2_per_class']:.4f}, hard {m['fd_l2_hard']:.4f}); "
              f"attribute mix generated {[round(v, 3) for v in m['attr_fake']]} vs real {[round(v, 3) for v in m['attr_real']]}")
    f0, f1 = res[0.]['fairness_discrepancy'], res[a.mu]['fairness_discrepancy']
    print(f"\nFD-L2 mu=0: {f0:.4f}, mu={a.mu:g}: {f1:.4f} -> {'LOWER with the regulariser' if f1 < f0 else 'NOT lower'}")
