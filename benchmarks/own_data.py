"""Acceptance run of issue 18: a CSV of real photos through `xaimm init` -> `xaimm run`, offline, on the CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/own_data.py [--n-per-class 200] [--size 128] [--preset offline]
                                         [--out runs/bench-own-data] [--set KEY=VALUE ...]

Builds the real-photo dataset of `xaimm_nb.data.photos` (scikit-image's bundled photos of a cat, an espresso, a
motorcycle and a rocket, augmented: a bbox, a rationale, a protected colour/greyscale rendering biased in train and
an artefact tag on most training cats; 4 classes x --n-per-class images, 60/15/25 % train/valid/test) under --out,
writes its starter config with `xaimm init` (the offline preset: EfficientNet-Lite0 + all-MiniLM-L6-v2, no
downloads) and runs the whole study as written (`--set` overrides values, as `xaimm run --set` does). Both commands
run as separate processes, as a user would start them. Prints the wall time of each command and of each stage, the
CPU seconds of the commands, the machine's load average (other jobs on a shared machine slow the wall time down),
and the headline numbers of results/metrics.json: test accuracy / macro-F1 / delta-bias / worst-group accuracy,
the explanation table against the boxes (image IoU, pointing) and rationales (text IoU, pointing), the GAN's
FID/KID on the images, the dual encoder's recall@1 and Reveal-to-Revise before/after. The acceptance bound is 10
minutes for `init` + `run` on 2 CPU cores; the summary is also written to --out/summary.json.
"""
import argparse, json, os, resource, shutil, subprocess, sys, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg'); os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

LIMIT_S = 600  # the acceptance bound for init + run
_MAIN = 'import sys; from xaimm_nb.cli import main; sys.exit(main(sys.argv[1:]))'  # the `xaimm` command

def _cmd(args, log):
    "Run `xaimm ARGS` in a fresh process (its output to `log`); (wall s, CPU s of the process)."
    t, c0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, 'w') as f:
        rc = subprocess.run([sys.executable, '-c', _MAIN, *args], stdout=f, stderr=subprocess.STDOUT).returncode
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc: sys.exit(f"xaimm {' '.join(args)}: exit code {rc}; see {log}")
    return round(time.time() - t, 1), round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1)

def _r(v): return round(v, 3) if isinstance(v, float) else v

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-per-class', type=int, default=200, help='images per class, all splits (default 200)')
    ap.add_argument('--size', type=int, default=128, help='image side in pixels (default 128, the offline preset\'s)')
    ap.add_argument('--preset', default='offline', help='model preset `xaimm init` writes (default offline)')
    ap.add_argument('--out', default='runs/bench-own-data', help='folder for the dataset, config, run and logs')
    ap.add_argument('--set', dest='overrides', nargs='*', default=[],
                    help='overrides for `xaimm run`, e.g. train.epochs=4')
    ap.add_argument('--seed', type=int, default=0, help='seeds the dataset')
    a = ap.parse_args()
    from xaimm_nb.data.photos import photo_dataset
    out = Path(a.out).absolute()
    if out.exists(): shutil.rmtree(out)
    t = time.time()
    csv = photo_dataset(out/'data', a.n_per_class, a.size, seed=a.seed)
    print(f"dataset: {csv} ({4*a.n_per_class} images at {a.size} px) in {time.time() - t:.1f} s", flush=True)
    cfg, run = out/'my.yaml', out/'run'
    load0 = os.getloadavg()[0]
    w_init, c_init = _cmd(['init', '--data', str(csv), '--out', str(cfg), '--preset', a.preset], out/'init.log')
    print(f"xaimm init: {w_init} s; config {cfg}", flush=True)
    args = ['run', '--config', str(cfg), '--out', str(run)] + (['--set', *a.overrides] if a.overrides else [])
    w_run, c_run = _cmd(args, out/'run.log')
    print(f"xaimm run: {w_run} s; log {out/'run.log'}", flush=True)
    m = json.loads((run/'results/metrics.json').read_text())
    stages = json.loads((run/'results/stages.json').read_text())
    xai = {k: {c: _r(v) for c, v in r.items() if c.split('/')[-1] in ('iou', 'pointing')}
           for k, r in m.get('explain', {}).get('table', {}).items()}
    g, d, r2r = m.get('gan', {}), m.get('dual', {}), m.get('r2r', {})
    s = dict(images=4*a.n_per_class, size=a.size, preset=a.preset, overrides=a.overrides,
             wall_s=dict(init=w_init, run=w_run, total=round(w_init + w_run, 1)), cpu_s=dict(init=c_init, run=c_run),
             stage_s={k: round(v, 1) for k, v in stages.items()}, load=[round(load0, 1), round(os.getloadavg()[0], 1)],
             threads=os.cpu_count(), test={k: _r(v) for k, v in m['classifier']['test'].items()}, xai=xai,
             gan={k: _r(g[k]) for k in ('fid_data', 'kid_data', 'conditional_accuracy', 'fairness_discrepancy')
                  if k in g},
             dual_recall={k: _r(v) for k, v in d.get('recall', {}).items()},
             r2r=dict(artefact_class=r2r.get('data', {}).get('artefact_class_name'),
                      before={k: _r(v) for k, v in r2r.get('base', {}).items()},
                      **{k: {kk: _r(vv) for kk, vv in v['after'].items()} for k, v in r2r.get('methods', {}).items()}))
    (out/'summary.json').write_text(json.dumps(s, indent=1))
    print(f"\nload average {s['load'][0]} -> {s['load'][1]} on {s['threads']} CPUs; "
          f"CPU seconds: init {c_init}, run {c_run}")
    print('stage seconds: ' + ', '.join(f"{k} {v}" for k, v in s['stage_s'].items()))
    ok = 'within' if s['wall_s']['total'] <= LIMIT_S else 'OVER'
    print(f"init + run: {s['wall_s']['total']} s ({ok} the {LIMIT_S} s bound)")
    print('test: ' + ', '.join(f"{k} {v}" for k, v in s['test'].items()))
    print(f"{'method':16} {'img IoU':>8} {'img pt':>8} {'txt IoU':>8} {'txt pt':>8}")
    for k, v in xai.items():
        f = lambda c: f"{v[c]:8.3f}" if c in v else f"{'-':>8}"
        print(f"{k:16} {f('image/iou')} {f('image/pointing')} {f('text/iou')} {f('text/pointing')}")
    print('gan: ' + json.dumps(s['gan']))
    print('dual recall@1: ' + json.dumps(s['dual_recall']))
    print('r2r: ' + json.dumps(s['r2r']))
    print(f"summary: {out/'summary.json'}")

if __name__ == '__main__': main()
