"""Seconds per WGAN-GP training step (n_critic critic updates + one generator update) at 32 px, the plain fp32 step
(`WGANConfig(fast=False)`) and the faster one (`fast=True`: channels-last, bf16 autocast where the CPU/GPU has bf16
units, one autocast region per critic update, fused Adam) side by side, on scikit-learn's digits; with `--quality`,
the sample quality of both at an equal number of steps (conditional accuracy, FID on the digits classifier's features).

    python benchmarks/gan_step.py [--threads 2] [--steps 30] [--width 32] [--bs 32] [--n-critic 5]
                                  [--quality STEPS --seeds 0 1 2] [--device cpu|cuda] [--json PATH]

Timing: `--steps` steps of each variant after `--warmup` steps, alternated `--repeats` times (the best is shown),
in this process, with `--threads` intra-op threads; wall seconds and process CPU seconds (the CPU figure is robust to
other processes on the machine when --threads is 1; with more threads it also counts the threads' spin-waiting).
Run it under the shared timing lock on the 2-core machine:
`flock /tmp/xaimm_timing.lock nice -n 0 env OMP_NUM_THREADS=2 python benchmarks/gan_step.py`.
"""
import argparse, json, time
import torch
from xaimm_nb.gan import WGANConfig, train_wgan, digits_gan_data
from gan_digits import interval  # mean and 95 % t-interval half-width (this folder is on sys.path)

def cfg(a, fast, steps, seed=0, **kw):
    return WGANConfig(g_dim=a.width, d_dim=a.width, bs=a.bs, n_critic=a.n_critic, lr_g=2e-4, lr_d=2e-4, steps=steps,
                      fast=fast, seed=seed, device=a.device, progress=False, sample_every=0, ckpt_every=0, **kw)

def step_time(a, tr, fast):
    "Wall and process-CPU seconds per step: runs of warmup + steps and of warmup steps, subtracted (setup cancels)."
    def run(n):
        c = time.process_time()
        w = train_wgan(cfg(a, fast, n, clf_epochs=1, eval_every=0, eval_n=64), tr).history[-1]['time_s']
        return w, time.process_time() - c  # wall: the loop's own clock; setup and final evaluation cancel out
    (w1, c1), (w0, c0) = run(a.warmup + a.steps), run(a.warmup)
    return (w1 - w0) / a.steps, (c1 - c0) / a.steps

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=3, help='timing runs per variant (0: only --quality)')
    ap.add_argument('--width', type=int, default=32)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--n-critic', type=int, default=5)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--quality', type=int, default=0, help='train both variants this many steps and compare samples')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0])
    ap.add_argument('--json', default=None, help='write the figures here')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr, te = digits_gan_data('train'), digits_gan_data('test')
    out = dict(args=vars(a), torch=torch.__version__, threads=torch.get_num_threads())
    print(f"{a.device}, {torch.get_num_threads()} threads, 32 px, width {a.width}, batch {a.bs}, n_critic {a.n_critic}")
    t = {False: [], True: []}
    for i in range(a.repeats):
        for fast in (False, True):
            t[fast].append(step_time(a, tr, fast))
            print(f"  run {i + 1}/{a.repeats} {'fast ' if fast else 'plain'}: {t[fast][-1][0]:.3f} s/step wall, "
                  f"{t[fast][-1][1]:.3f} s/step CPU", flush=True)
    for j, kind in enumerate(('wall', 'CPU') if a.repeats else ()):  # the best run of each: others only add time
        old, new = min(v[j] for v in t[False]), min(v[j] for v in t[True])
        out.update({f'{kind}_s_per_step_plain': old, f'{kind}_s_per_step_fast': new, f'{kind}_speedup': old / new})
        print(f"{kind:4s} seconds per step (best of {a.repeats})   plain fp32 (fast=False) {old:.3f}   "
              f"fast (fast=True) {new:.3f}   speed-up {old / new:.2f}x")
    out['runs'] = {('fast' if k else 'plain'): v for k, v in t.items()}
    if a.quality:
        q = {}
        for fast in (False, True):
            for s in a.seeds:
                r = train_wgan(cfg(a, fast, a.quality, s, eval_every=0, eval_n=360, clf_epochs=20), tr, eval_data=te,
                               fid_name='digits')
                m = r.metrics
                q[f"{'fast' if fast else 'plain'}/{s}"] = dict(
                    conditional_accuracy=m['conditional_accuracy'], fid_digits=m['fid_digits'],
                    train_time_s=m['train_time_s'])
                print(f"{'fast ' if fast else 'plain'} seed {s}: {a.quality} steps in {m['train_time_s']:.0f} s, "
                      f"conditional accuracy {m['conditional_accuracy']:.3f}, FID {m['fid_digits']:.2f}", flush=True)
        out['quality'] = q
        if len(a.seeds) > 1:  # paired by seed: fast - plain, mean and 95 % t-interval half-width
            for k in ('conditional_accuracy', 'fid_digits'):
                d = [q[f'fast/{s}'][k] - q[f'plain/{s}'][k] for s in a.seeds]
                m, hw = interval(d)
                out[f'quality_diff_{k}'] = dict(mean=m, half_width=hw, per_seed=d)
                print(f"{k}: fast - plain {m:+.3f} ± {hw:.3f} (95 % t-interval over {len(d)} seeds, paired) -> "
                      f"{'within noise' if abs(m) <= hw else 'differs'}")
    if a.json: json.dump(out, open(a.json, 'w'), indent=1)
