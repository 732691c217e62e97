"""Dataset-scale explanation into a store (`xaimm explain --store`): throughput with 1 and 2 processes, peak memory
against the dataset's size, and per-sample costs of the whole method table at 224 px (for the paper-sized estimate).

    python benchmarks/explain_scale.py throughput [--n 512]        # Grad-CAM++ and LIME, 1 and 2 gloo ranks
    python benchmarks/explain_scale.py memory [--n 512 --big 4096]  # peak RSS of one process, ratio big / n
    python benchmarks/explain_scale.py costs [--n 4 --budget 420]   # s/sample of every method, offline preset, 224 px

Every run is a fresh `xaimm explain --store` process (under `torchrun --standalone --nproc_per_node N` for N ranks)
with OMP_NUM_THREADS=1 (one thread per process), on the tiny config's classifier (trained once here, 32 px SynthMM)
for throughput and memory. Throughput = samples / (last shard's end - first shard's start) over all ranks, from the
store's timings: it leaves out the start-up (imports, model load), which does not grow with the data; the slowest
rank's own span (first start to last end of its shards) also leaves out the ranks' start-up skew. Scaling efficiency
= throughput(2) / (2 x throughput(1)). Peak RSS: `getrusage(RUSAGE_CHILDREN)` of the one process. Grad-CAM++ at its
defaults; LIME with 256 perturbations and SLIC superpixels (the `explain` stage's defaults); every map is scored as
in the `explain` stage (pointing, IoU, perturbation AUCs, confidence drop/increase)."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
ROOT, BIN = Path(__file__).resolve().parents[1], Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
           MPLBACKEND='Agg', TOKENIZERS_PARALLELISM='false', XAIMM_PROGRESS='0')
METHODS = dict(gradcampp={}, lime=dict(num_samples=256, segmentation='slic'))

def sh(cmd, timeout=None):
    try: r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return None  # killed: the shards it finished are in the store
    if r.returncode: sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r

def classifier(tmp):
    "The tiny config's classifier, trained once (a few seconds): its best.pt."
    sh([BIN/'xaimm', 'train', '--config', 'tiny', '--out', str(tmp/'run')])
    return tmp/'run'/'models'/'best.pt'

def explain(tmp, ckpt, n, methods, nproc, name, config='tiny', extra=(), shard=64, timeout=None):
    "One `xaimm explain --store` run: (store, its timings, peak RSS of the children in MiB)."
    store = tmp/name
    args = ['explain', '--config', config, '--set', f'data.n_test={n}', f'explain.methods={json.dumps(methods)}',
            'explain.bs=16', *extra, '--ckpt', str(ckpt), '--store', str(store), '--shard-size', str(shard)]
    cmd = ([BIN/'torchrun', '--standalone', f'--nproc_per_node={nproc}', BIN/'xaimm'] if nproc > 1 else [BIN/'xaimm'])
    sh([*cmd, *args], timeout)
    t = [json.loads(f.read_text()) for f in sorted((store/'timings').iterdir())]
    return store, t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

def throughput(a, tmp):
    ck, out, busy = classifier(tmp), {}, {}
    for m in a.methods:
        for p in (1, 2):
            _, t, _ = explain(tmp, ck, a.n, {m: METHODS[m]}, p, f'{m}-{p}')
            wall = max(x['end'] for x in t) - min(x['start'] for x in t)
            ranks = sorted({x['rank'] for x in t})
            # the slowest rank's own span: leaves out the ranks' start-up skew (one rank still importing)
            span = max(max(x['end'] for x in t if x['rank'] == r) - min(x['start'] for x in t if x['rank'] == r)
                       for r in ranks)
            out[m, p], busy[m, p] = a.n / wall, a.n / span
            print(f"{m:10s} {p} process(es): {a.n} samples in {wall:6.1f} s = {out[m, p]:7.1f} samples/s; slowest "
                  f"rank's span {span:6.1f} s = {busy[m, p]:7.1f} samples/s (ranks {ranks})", flush=True)
        print(f"{m:10s} scaling efficiency 2 vs 1 process: {out[m, 2] / (2 * out[m, 1]):.2f} "
              f"(per-rank spans: {busy[m, 2] / (2 * busy[m, 1]):.2f})", flush=True)

def memory(a, tmp):
    ck = classifier(tmp)
    # RUSAGE_CHILDREN is the max over all children so far: measure each size in a fresh python of its own
    code = ("import sys, resource, subprocess; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    rss = {}
    for n in (a.n, a.big):
        store, t0 = tmp/f'mem-{n}', time.time()
        cmd = [BIN/'xaimm', 'explain', '--config', 'tiny', '--set', f'data.n_test={n}',
               f"explain.methods={json.dumps(dict(gradcampp={}))}", 'explain.bs=16', '--ckpt', str(ck), '--store',
               str(store), '--shard-size', '64']
        rss[n] = float(sh([sys.executable, '-c', code, *map(str, cmd)]).stdout.split()[-1])
        print(f"{n:5d} samples (Grad-CAM++, shards of 64): peak RSS {rss[n]:.0f} MiB ({time.time() - t0:.0f} s)",
              flush=True)
    print(f"peak RSS ratio {a.big} / {a.n} samples: {rss[a.big] / rss[a.n]:.3f} (target <= 1.2)")

def costs(a, tmp):
    "Seconds per sample of every method of the `default` config's table, offline preset (untrained head), 224 px."
    import torch
    from xaimm_nb.experiments import config_path
    from xaimm_nb.core import load_yaml, save_state
    from xaimm_nb.pipeline import parse_config, data_splits, _default_methods
    from xaimm_nb.train import build_classifier
    d = load_yaml(config_path('default'))
    d['data'] = {**d.get('data', {}), 'size': 224, 'n_test': a.n}
    d['train'] = {**d.get('train', {}), 'size': 224}
    torch.manual_seed(0)
    ck = tmp/'offline224.pt'
    save_state(ck, build_classifier(d, data_splits(parse_config(d, ['synth']))['train']).state_dict())
    cfg = tmp/'offline224.yaml'; cfg.write_text(json.dumps(d))
    meths = {**_default_methods(), 'scorecam': {}}
    # shards of one sample, stopped after `--budget` s: the samples finished by then are measured
    _, t, _ = explain(tmp, ck, a.n, meths, 1, 'costs', str(cfg), shard=1, timeout=a.budget)
    if not t: sys.exit(f"costs: no sample finished within --budget {a.budget} s")
    n = len(t)
    sec = {m: sum(x['seconds'].get(m, 0.) for x in t) / n for m in [*meths, 'random']}
    wall = max(x['end'] for x in t) - min(x['start'] for x in t)
    for m, s in sec.items(): print(f"{m:10s} {s:8.3f} s/sample (explain only)")
    print(f"all methods: {sum(sec.values()):.2f} s/sample to explain; {wall / n:.2f} s/sample with scoring and "
          f"writing ({n} of {a.n} samples finished, 1 process, 1 thread)")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('part', choices=['throughput', 'memory', 'costs'])
    p.add_argument('--n', type=int, default=None); p.add_argument('--big', type=int, default=4096)
    p.add_argument('--budget', type=float, default=420)  # costs: seconds before the run is stopped
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))  # throughput's
    a = p.parse_args()
    a.n = a.n or (4 if a.part == 'costs' else 512)
    with tempfile.TemporaryDirectory() as t: globals()[a.part](a, Path(t))
