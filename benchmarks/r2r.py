"""Reveal to Revise acceptance run over seeds: does revising remove a strong spurious artefact better than fine-tuning?

    python benchmarks/r2r.py [run_dir] [seeds=0,1,2] [key=value ...]     # e.g. preset=offline size=64 epochs=3

Trains the preset (default `tiny`) on SynthMM (4 shapes, the corner tag on 95% of class 0 and 5% of the rest), runs
`run_r2r` per seed (P-ClArC, RR-ClArC, RRR and the plain fine-tuning control, each revising with the same budget) into
run_dir/seed<S>, then prints the diagnosis per seed and, per method and round (0 = unrevised), the mean and the 95%
t-interval over the seeds of clean/conflict/attacked accuracy, test Δbias, the artefact relevance of the stage's
explainer and of Grad-CAM, and the TCAV sensitivity |S| (attacked split). Default run_dir runs/bench_r2r.
"""
import os, sys, time, json
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np, torch
from scipy import stats
from xaimm_nb.core import apply_overrides
from xaimm_nb.fairness.r2r import run_r2r

KEYS = dict(clean='clean acc ↑', conflict='conflict acc ↑', attacked='attacked acc ↑', delta_bias='Δbias ↓',
            art_rel='art.rel ↓', art_rel_gradcam='Grad-CAM art.rel ↓', tcav_sens='TCAV |S| ↓')

def row(e):
    "The table's numbers of one evaluation dict (split -> metrics)."
    a = e['attacked']
    return dict(clean=e['clean']['acc'], conflict=e['conflict']['acc'], attacked=a['acc'],
                delta_bias=e['test']['delta_bias'], art_rel=a['art_rel'], art_rel_gradcam=a['art_rel_gradcam'],
                tcav_sens=a['tcav_sens'])

def ci(xs):
    "Mean ± half-width of the 95% t-interval (one value: ± 0)."
    xs = np.asarray(xs, float); n = len(xs)
    h = stats.t.ppf(.975, n - 1) * xs.std(ddof=1) / np.sqrt(n) if n > 1 else 0.
    return f"{xs.mean():.3f}±{h:.3f}"

def table(res):
    "Rows (method, round) -> per-seed `row`s; a method's missing rounds (it stopped) repeat its last one."
    out = {('base', 0): [row(r['base']['eval']) for r in res]}
    for m in res[0]['methods']:
        n = max(len(r['methods'][m]['rounds']) for r in res)
        for k in range(1, n + 1):
            out[(m, k)] = [row(r['methods'][m]['rounds'][min(k, len(r['methods'][m]['rounds'])) - 1]['eval'])
                           for r in res]
        out[(m, 'final')] = [row(r['methods'][m]['rounds'][r['methods'][m]['final_round'] - 1]['eval']) for r in res]
    return out

if __name__ == '__main__':
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
    args = sys.argv[1:]
    run_dir = args.pop(0) if args and '=' not in args[0] else 'runs/bench_r2r'
    seeds = next((a.split('=')[1] for a in args if a.startswith('seeds=')), '0,1,2')
    args = [a for a in args if not a.startswith('seeds=')]
    res, secs = [], []
    for s in map(int, seeds.split(',')):
        t = time.time()
        res.append(run_r2r(apply_overrides({}, args + [f'seed={s}']), f'{run_dir}/seed{s}'))
        secs.append(time.time() - t)
        print(f"seed {s}: {secs[-1]:.0f} s", flush=True)
    c = res[0]['config']
    print(f"\nR2R on SynthMM, preset={c['preset']}, rho_ya={c['rho_ya']}, seeds {seeds}: "
          f"{np.mean(secs):.0f} s per seed")
    print("Diagnosis (unrevised model), per seed:")
    for s, r in zip(seeds.split(','), res):
        d = r['diagnosis']; cv, rl, sz = d['cav'], d.get('reliance', {}), d['sizes']
        print(f"  seed {s}: layer {d['layer']['name']} {d['layer']['shape']}; "
              f"CAV held-out acc {cv['heldout_acc']:.3f}, cos(v, paste diff) {cv.get('cos_paste', float('nan')):.3f}, "
              f"shift {cv.get('shift_sd', float('nan')):.1f} sd")
        for k in ('caption', 'blank caption', 'other caption'):
            if k in rl: print(f"    {k:14s}: acc clean {rl[k]['acc_clean']:.3f} → pasted {rl[k]['acc_pasted']:.3f}, "
                              f"Δp(artefact class) {rl[k]['dp_artefact_class']:+.3f}")
        if 'first_order' in rl: print(f"    Δp from pasting {rl['first_order']['dp']:+.3f}; "
                                      f"first-order estimate at the layer {rl['first_order']['estimate']:+.3f}")
        if 'input_grad_share' in rl: print(f"    input-gradient share on the tag {rl['input_grad_share']['grad']:.4f} "
                                           f"(its pixel share {rl['input_grad_share']['area']:.4f})")
        for m, v in sz.items():
            print(f"    {m:8s}: CE {v['ce']:.3f}, penalty {v['penalty']:.3g}, |∇CE| {v['grad_ce']:.3g}, "
                  f"|∇penalty| {v['grad_penalty']:.3g} (ratio at λ=1 {v['ratio']:.3g})")
        lams = {m: [round(x['revise']['lam'], 4) for x in r['methods'][m]['rounds']] for m in r['methods']
                if r['methods'][m]['rounds'][0]['revise'].get('lam') is not None}
        print(f"    balanced λ per round: {lams}")
    print(f"\n{'method':10s} {'round':>5s} " + ' '.join(f'{v:>18s}' for v in KEYS.values()))
    for (m, k), rows in table(res).items():
        print(f"{m:10s} {str(k):>5s} " + ' '.join(f"{ci([r[x] for r in rows]):>18s}" for x in KEYS))
    t = table(res)
    if ('finetune', 'final') in t:
        print("\nfinal round minus the control's final round, paired by seed (mean ± 95% t-interval):")
        for m in [m for m in res[0]['methods'] if m != 'finetune']:
            d = [{x: r[x] - c[x] for x in KEYS} for r, c in zip(t[(m, 'final')], t[('finetune', 'final')])]
            print(f"{m:10s} {'Δ':>5s} " + ' '.join(f"{ci([r[x] for r in d]):>18s}" for x in KEYS))
    json.dump(dict(table={f'{m}/{k}': rows for (m, k), rows in table(res).items()}, seconds=secs),
              open(f'{run_dir}/table.json', 'w'), indent=1)
