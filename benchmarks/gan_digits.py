"""The conditional attention WGAN-GP on real data on a CPU: scikit-learn's digits (`configs/gan_digits.yaml`).

    python benchmarks/gan_digits.py [OUT_DIR] [--threads 2] [--main] [--sweep --mu 10 --seeds 0 1 2 --sweep-steps N]
                                    [--set KEY=VALUE ...]

--main: the acceptance run of the config as shipped (target: conditional accuracy >= 0.85 and an FID within 6 minutes
on the 2-core CPU, classifiers included): prints wall time (whole run and GAN loop), conditional accuracy under the
separately trained digits classifier (and its held-out accuracy), FID/KID on its features against the held-out digits,
and the curves; the sample grid is OUT_DIR/main/visualizations/gan_samples.png.
--sweep: the bias regulariser on the ink-colour attribute (50/50 in the real digits): mu = 0 and mu = MU over the
seeds, each `--sweep-steps` generator steps; prints the fairness discrepancy (FD-L2 of the generated vs real attribute
mix, soft and hard) per run, the mean with a 95 % t-interval over seeds per mu, and the paired difference.
Everything goes to OUT_DIR/gan_digits.json (default OUT_DIR /tmp/xaimm_gan_digits); finished runs are re-read.
Timed runs: `flock /tmp/xaimm_timing.lock nice -n 0 env OMP_NUM_THREADS=2 python benchmarks/gan_digits.py --main`.
"""
import argparse, json, math, statistics, time
from pathlib import Path
import torch
from xaimm_nb.core import load_yaml, apply_overrides, atomic_write
from xaimm_nb.experiments import config_path
from xaimm_nb.gan import train_wgan_from_config

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # two-sided 95 % t quantiles by degrees of freedom

def interval(v):
    "Mean and the half-width of its 95 % t-interval over the values `v`."
    m = statistics.mean(v)
    return m, (T95.get(len(v) - 1, 1.96) * statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float('nan'))

def save(res, f):
    "Write `res` to `f` atomically, keeping the sweep runs other processes (--part) finished meanwhile."
    if f.exists():
        sw = res.setdefault('sweep', {})
        sw.update({k: v for k, v in json.loads(f.read_text()).get('sweep', {}).items() if k not in sw})
    atomic_write(f, json.dumps(res, indent=1))

def run(cfg, out, **gan):
    t = time.time()
    r = train_wgan_from_config(dict(cfg, gan=dict(cfg['gan'], progress=False, **gan)), out)
    return r, time.time() - t

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('out', nargs='?', default='/tmp/xaimm_gan_digits')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--main', action='store_true')
    ap.add_argument('--sweep', action='store_true')
    ap.add_argument('--mu', type=float, default=10.)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--sweep-steps', type=int, default=None, help='default: the config\'s steps')
    ap.add_argument('--part', default=None, help='I/N: run every N-th sweep run from the I-th (parallel processes)')
    ap.add_argument('--set', nargs='*', default=[], dest='overrides', help='config overrides, e.g. gan.steps=800')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    f = out/'gan_digits.json'
    res = json.loads(f.read_text()) if f.exists() else {}
    cfg = apply_overrides(load_yaml(config_path('gan_digits')), a.overrides)
    res['config'] = cfg['gan']
    if a.main:
        r, wall = run(cfg, out/'main')
        m = r.metrics
        keep = ('step', 'time_s', 'conditional_accuracy', 'fid_digits')
        res['main'] = dict(wall_s=wall, threads=torch.get_num_threads(),
                           **{k: v for k, v in m.items() if not isinstance(v, list)},
                           history=[{k: h[k] for k in keep} for h in r.history],
                           grid=str(out/'main'/'visualizations'/'gan_samples.png'))
        print(f"digits, {torch.get_num_threads()} threads: {wall:.0f} s for the whole run (classifiers included), "
              f"GAN loop {m['train_time_s']:.0f} s over {m['step']} steps")
        print(f"digits classifier held-out accuracy {m['classifier_acc']:.3f} (ink colour: {m['attr_clf_acc']:.3f})")
        print("curve (step: time s, cond. acc, FID): " + ', '.join(
            f"{h['step']}: {h['time_s']:.0f} s {h['conditional_accuracy']:.3f} {h['fid_digits']:.2f}"
            for h in r.history))
        ok = m['conditional_accuracy'] >= .85 and wall <= 360
        print(f"final: conditional accuracy {m['conditional_accuracy']:.3f}, FID {m['fid_digits']:.2f}, "
              f"KID {m['kid_digits']:.4f} ± {m['kid_digits_std']:.4f}, FD-L2 {m['fairness_discrepancy']:.4f} -> "
              f"{'PASS' if ok else 'BELOW'} (>= 0.85 in <= 360 s)")
    if a.sweep:
        steps = a.sweep_steps or cfg['gan']['steps']
        sw = res.setdefault('sweep', {})
        jobs = [(s, mu) for s in a.seeds for mu in (0., a.mu)]
        if a.part:  # this process's share of the runs, e.g. 0/2 and 1/2 in two processes on the same OUT_DIR
            i, n = map(int, a.part.split('/')); jobs = jobs[i::n]
        for s, mu in jobs:
            k = f'mu{mu:g}/seed{s}/steps{steps}'
            if k in sw: continue
            r, wall = run(dict(cfg, seed=s), out/f'mu{mu:g}_seed{s}_{steps}', mu=mu, steps=steps, seed=s)
            m = r.metrics
            sw[k] = dict(mu=mu, seed=s, steps=steps, wall_s=wall, fd_l2=m['fairness_discrepancy'],
                         fd_l2_hard=m['fd_l2_hard'], fd_l2_per_class=m['fd_l2_per_class'],
                         conditional_accuracy=m['conditional_accuracy'], fid_digits=m['fid_digits'])
            print(f"mu={mu:g} seed {s}: FD-L2 {m['fairness_discrepancy']:.4f} (hard {m['fd_l2_hard']:.4f}), "
                  f"cond. acc {m['conditional_accuracy']:.3f}, "
                  f"FID {m['fid_digits']:.2f}, {wall:.0f} s", flush=True)
            save(res, f)
        missing = [f'mu{mu:g}/seed{s}' for s in a.seeds for mu in (0., a.mu) if f'mu{mu:g}/seed{s}/steps{steps}' not in sw]
        if missing: print(f"not summarised yet, runs missing: {missing} (another --part, or rerun)")
    if a.sweep and not missing:
        rows = {mu: [sw[f'mu{mu:g}/seed{s}/steps{steps}'] for s in a.seeds] for mu in (0., a.mu)}
        summ = {}
        for key in ('fd_l2', 'fd_l2_hard', 'conditional_accuracy', 'fid_digits'):
            summ[key] = {f'mu{mu:g}': interval([r[key] for r in rows[mu]]) for mu in rows}
            summ[key]['paired_diff'] = interval([b[key] - z[key] for z, b in zip(rows[0.], rows[a.mu])])
            print(f"{key:22s} mu=0: {summ[key]['mu0'][0]:.4f} ± {summ[key]['mu0'][1]:.4f}   mu={a.mu:g}: "
                  f"{summ[key][f'mu{a.mu:g}'][0]:.4f} ± {summ[key][f'mu{a.mu:g}'][1]:.4f}   paired difference "
                  f"{summ[key]['paired_diff'][0]:+.4f} ± {summ[key]['paired_diff'][1]:.4f} "
                  f"(95 % t-intervals, {len(a.seeds)} seeds)")
        d, hw = summ['fd_l2']['paired_diff']
        lo0 = summ['fd_l2']['mu0'][0] - summ['fd_l2']['mu0'][1]
        hi1 = summ['fd_l2'][f'mu{a.mu:g}'][0] + summ['fd_l2'][f'mu{a.mu:g}'][1]
        verdict = ('lowers' if hi1 < lo0 else 'does not lower') + ' the fairness discrepancy beyond the seed interval'
        print(f"mu={a.mu:g} {verdict} (intervals {'disjoint' if hi1 < lo0 else 'overlap'}; "
              f"paired difference {d:+.4f} ± {hw:.4f})")
        res['sweep_summary'] = dict(summ, steps=steps, seeds=a.seeds, mu=a.mu, verdict=verdict)
    save(res, f)
    print(f"-> {f}")
