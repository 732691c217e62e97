"""Train the SynthMM-VQA recipes from scratch and time them (issue #20: >= 90 % test accuracy in <= 5 minutes each).

    python benchmarks/train_vqa.py [lxmert] [vilt] [threads=2] [out=runs/bench_vqa]

For each kind: `train_vqa.load_or_train_vqa(kind, out/<kind>.pt)` after deleting any earlier weights (so the data,
LXMERT's region features and every training stage are in the time), on `threads` torch threads, then the accuracy
on the test split (1,000 questions, every image asked every type), overall and per question type. Prints one JSON
line per kind and the training history. Run it on a quiet machine: other processes slow 2-thread training a lot.
"""
import os, sys, time, json
os.environ.setdefault('OMP_NUM_THREADS', '1')
from pathlib import Path
import torch
from xaimm_nb.data.vqa import SynthVQA
from xaimm_nb.train_vqa import load_or_train_vqa, vqa_config, vqa_accuracy

args = dict(a.split('=', 1) for a in sys.argv[1:] if '=' in a)
kinds = [a for a in sys.argv[1:] if '=' not in a] or ['lxmert', 'vilt']
torch.set_num_threads(int(args.get('threads', 2)))
out = Path(args.get('out', 'runs/bench_vqa'))
for kind in kinds:
    p = out/f'{kind}.pt'
    for f in (p, p.with_suffix('.json')): f.unlink(missing_ok=True)
    t0 = time.time(); m = load_or_train_vqa(kind, p); sec = time.time() - t0
    te = SynthVQA(vqa_config(kind), 'test', features=kind == 'lxmert')
    acc = {k: round(v, 4) for k, v in vqa_accuracy(m, te).items()}
    print(json.dumps(dict(kind=kind, seconds=round(sec, 1), threads=torch.get_num_threads(), test=acc)), flush=True)
    for o in json.loads(p.with_suffix('.json').read_text())['history']:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in o.items()}, flush=True)
