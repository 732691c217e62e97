"""The DSMI seed's perturbation table on SynthMM-VQA: tiny LXMERT and ViLT trained on the CPU, every attention method.

    python benchmarks/vlm_vqa.py [--out runs/vlm_vqa] [--kinds lxmert vilt] [--n 500] [--bs 50] [--retrain] [--threads 2]

Trains each model with its recipe (`xaimm_nb.train_vqa.VQA_RECIPES`; weights cached in OUT/models, `--retrain` trains
again and so measures the training time), scores it on N test questions, then for every method of `explain.vlm`
(raw attention, attention Grad-CAM, rollout, Chefer ICCV'21, DSMI, DSMI+Grad, DSMI+Grad+Attn) and random: the four
perturbation AUCs (image/text tokens physically dropped, most relevant first '+' lower is better, least relevant first
'−' higher is better), pointing and IoU per token against the ground truth, whether each beats random (paired
bootstrap interval excluding 0), and seconds per batch of 32 against one forward + backward of the same batch.
Writes OUT/results/vlm_vqa.{json,md} and OUT/visualizations/vlm_*_{curves,maps}.png.
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
from pathlib import Path
import torch

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--out', default='runs/vlm_vqa'); p.add_argument('--kinds', nargs='+', default=['lxmert', 'vilt'])
    p.add_argument('--n', type=int, default=500); p.add_argument('--bs', type=int, default=50)
    p.add_argument('--retrain', action='store_true'); p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from xaimm_nb.vqa_study import vqa_study
    models = Path(a.out)/'models'
    if a.retrain:
        for k in a.kinds:
            for f in models.glob(f'vqa_{k}.*'): f.unlink()
    t = time.time()
    r = vqa_study(a.out, a.kinds, n=a.n, bs=a.bs)
    print(open(Path(a.out)/'results'/'vlm_vqa.md').read())
    for k, v in r.items():
        print(f"{k}: test accuracy {v['accuracy']['all']:.3f} "
              f"({', '.join(f'{q} {x:.3f}' for q, x in v['accuracy'].items() if q != 'all')}); "
              f"training {v['train_seconds'] or float('nan'):.0f} s wall, {v['train_cpu_seconds'] or float('nan'):.0f} s CPU on {v['threads']} threads; "
              f"table {v['seconds']['table']:.0f} s; forward+backward of 32 questions "
              f"{1000 * v['timing']['forward_backward']:.1f} ms")
    print(f'total {time.time() - t:.0f} s, threads {torch.get_num_threads()}')
