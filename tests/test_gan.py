"Edge cases of xaimm_nb.gan: known answers of the penalty and the bias loss, errors, checkpoints, exact resume, NaN handling."
import contextlib, json
from pathlib import Path
import numpy as np, pytest, torch, torch.nn as nn, yaml
from xaimm_nb.core import ConfigError, from_dict, load_state
import xaimm_nb.gan as gan
from xaimm_nb.gan import (gan_data, Generator, Critic, PAM, gradient_penalty, SynthClassifier, AttributeClassifier, bias_loss,
                          attribute_target, generate, sample_grid, evaluate_gan, WGANConfig, train_wgan, train_wgan_from_config,
                          train_attribute_classifier)

def toy(n=48, K=3, S=32, seed=0):
    "Class k = bright block at a class-specific place; s = colour of a bottom band."
    g = np.random.default_rng(seed)
    y, s = np.arange(n) % K, g.integers(0, 2, n)
    x = np.full((n, S, S, 3), 50, np.uint8)
    for i in range(n):
        x[i, 4:14, 2 + 9*y[i]:10 + 9*y[i]] = 220; x[i, -4:, :, s[i]] = 255
    return dict(images=x, visual=y, s=s)

TINY = dict(g_dim=8, d_dim=8, z_dim=16, bs=8, steps=4, n_critic=2, clf_dim=4, clf_epochs=1, eval_every=2, eval_n=24,
            sample_every=2, ckpt_every=2, progress=False)

# --- networks and data
@pytest.mark.parametrize('size', [32, 64])
def test_shapes(size):
    G, D = Generator(3, z_dim=16, dim=8, img_size=size), Critic(3, dim=8, img_size=size)
    x = G(torch.randn(5, 16), torch.arange(5) % 3)
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert D(x, torch.arange(5) % 3).shape == (5,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert sum(isinstance(m, PAM) for m in G.modules()) == sum(isinstance(m, PAM) for m in D.modules()) == 1
    assert not any(isinstance(m, PAM) for m in Generator(3, dim=8, img_size=size, attn=False).modules())

@pytest.mark.parametrize('size', [16, 28, 48, 128])
def test_unsupported_size(size):
    for f in (lambda: Generator(3, img_size=size), lambda: Critic(3, img_size=size), lambda: WGANConfig(img_size=size)):
        with pytest.raises(ValueError, match=f'img_size={size}'): f()

def test_attention_is_identity_at_init():
    "γ = 0: the generator equals the same network with the attention block removed."
    torch.manual_seed(0); G = Generator(3, z_dim=16, dim=8).eval()
    z, y = torch.randn(4, 16), torch.arange(4) % 3
    out = G(z, y)
    for b in G.blocks: b.attn = nn.Identity()
    torch.testing.assert_close(G(z, y), out)

def test_gan_data_errors_and_resize():
    d = toy()
    with pytest.raises(ValueError, match='missing'): gan_data(dict(images=d['images'], visual=d['visual']))
    with pytest.raises(ValueError, match=r'\[N,S,S,3\]'): gan_data(dict(d, images=d['images'][..., :2]))
    with pytest.raises(ValueError, match=r'\[N,3,S,S\]'): gan_data(dict(d, images=np.zeros((48, 32, 32, 3), np.float32)))
    with pytest.raises(ValueError, match='48 images but 47'): gan_data(dict(d, visual=d['visual'][:-1]))
    d['images'][0, 0, 0] = 0
    g = gan_data(d)
    assert g['images'].min() == -1 and g['images'].max() == 1 and g['images'].dtype == torch.float32
    r = gan_data(g, 64)['images']
    assert r.shape == (48, 3, 64, 64) and r.min() >= -1.01 and r.max() <= 1.01

# --- gradient penalty
class Lin(nn.Module):
    def __init__(self, w): super().__init__(); self.w = nn.Parameter(w)
    def forward(self, x, y): return x.flatten(1) @ self.w

@pytest.mark.parametrize('scale', [.3, 1., 2.5])
def test_penalty_linear_critic(scale):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3*4*4, generator=g); w = w / w.norm() * scale
    for _ in range(3):  # any interpolate: the gradient is w everywhere
        r, f = torch.randn(6, 3, 4, 4, generator=g) * 5, torch.randn(6, 3, 4, 4, generator=g)
        gp = gradient_penalty(Lin(w), r, f, torch.zeros(6, dtype=torch.long), lam=10.)
        torch.testing.assert_close(gp, torch.tensor(10 * (scale - 1)**2), rtol=1e-4, atol=1e-5)
        one = gradient_penalty(Lin(w), r, f, torch.zeros(6, dtype=torch.long), lam=10., one_sided=True)
        torch.testing.assert_close(one, torch.tensor(10 * max(scale - 1, 0.)**2), rtol=1e-4, atol=1e-5)

def test_penalty_trains_critic():
    "create_graph: the penalty has a gradient w.r.t. the critic's weights (λ·2(‖w‖−1)·w/‖w‖ for a linear critic)."
    w = torch.full((12,), .5); c = Lin(w.clone())
    gradient_penalty(c, torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2), torch.zeros(3, dtype=torch.long)).backward()
    torch.testing.assert_close(c.w.grad, 10 * 2 * (w.norm() - 1) * w / w.norm())

def test_gradgradcheck_through_attention_full_input():
    "Double backward through the critic (attention γ ≠ 0) w.r.t. a few pixels and the attention's own weights."
    torch.manual_seed(0)
    D = Critic(2, dim=2).double()
    pam = next(m for m in D.modules() if isinstance(m, PAM)); nn.init.constant_(pam.alpha, .9)
    x0, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 1])
    idx = torch.tensor([5, 700, 1500, 3000])
    name = next(n for n, _ in D.named_parameters() if n.endswith('q.weight'))
    def f(v, qw):
        x = x0.flatten(1).clone(); x[:, idx] = v
        return torch.func.functional_call(D, {name: qw}, (x.view_as(x0), y))
    v = x0.flatten(1)[:, idx].clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(f, (v, dict(D.named_parameters())[name].detach().clone().requires_grad_(True)), atol=1e-4)

# --- bias regulariser
def test_bias_loss_known_answers_and_gradient():
    torch.manual_seed(0)
    attr = AttributeClassifier(2, 4).eval().requires_grad_(False)
    G = Generator(3, z_dim=16, dim=8); y = torch.tensor([0, 0, 1, 1, 2, 2])
    fake = G(torch.randn(6, 16), y)
    with torch.no_grad(): p = attr(fake).softmax(-1)
    assert bias_loss(attr, fake, p.mean(0)).abs() < 1e-12
    per = torch.stack([p[y == k].mean(0) for k in range(3)])
    assert bias_loss(attr, fake, per, y).abs() < 1e-12
    # absent class 3 of a K=4 target is skipped; a wrong row for class 0 is counted once out of 3 present classes
    t = torch.cat([per, torch.tensor([[.9, .1]])]); t[0] += torch.tensor([.1, -.1])
    torch.testing.assert_close(bias_loss(attr, fake, t, y), torch.tensor(.02 / 3), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match='labels'): bias_loss(attr, fake, per)
    l = bias_loss(attr, fake, torch.tensor([1., 0.]))
    l.backward()
    assert l > 0 and all(q.grad is not None and q.grad.abs().sum() > 0 for q in (G.fc[0].weight, G.blocks[0].conv.weight, G.blocks[0].bn.emb.weight))
    assert all(q.grad is None for q in attr.parameters())

def test_attribute_target_shapes():
    attr, acc = train_attribute_classifier(toy(96), epochs=2, dim=4)
    d = gan_data(toy(96))
    t, tc = attribute_target(attr, d['images']), attribute_target(attr, d['images'], d['visual'])
    assert t.shape == (2,) and tc.shape == (3, 2)
    torch.testing.assert_close(t.sum(), torch.tensor(1.)); torch.testing.assert_close(tc.sum(1), torch.ones(3))

# --- evaluation
class CopyG(nn.Module):
    "A 'generator' that returns the real images in order: every metric must say 'identical to the data'."
    def __init__(self, x, K):
        super().__init__(); self.x, self.i, self.n_classes, self.z_dim, self.img_size = x, 0, K, 4, x.shape[-1]
        self.p = nn.Parameter(torch.zeros(1))
    def forward(self, z, y):
        out = self.x[self.i:self.i + len(z)]; self.i += len(z); return out

def test_evaluate_gan_on_copies():
    d = gan_data(toy(96))
    clf = SynthClassifier(3, 4).eval(); attr = AttributeClassifier(2, 4).eval()
    m = evaluate_gan(CopyG(d['images'], 3), d, clf, attr, n=64)
    assert abs(m['fid_synthmm']) < 1e-6 and abs(m['fairness_discrepancy']) < 1e-6 and abs(m['fd_l2_per_class']) < 1e-6
    assert m['ssim_nearest'] > .999 and abs(m['diversity'] - m['diversity_real']) < 1e-6 and m['n'] == 64
    assert {'kid_synthmm', 'conditional_accuracy', 'fd_l1', 'fd_kl', 'attr_fake', 'attr_real'} <= set(m)

def test_generate_leaves_global_rng_and_mode():
    G = Generator(3, z_dim=16, dim=8).train()
    torch.manual_seed(3); a = torch.rand(1)
    torch.manual_seed(3); x1 = generate(G, torch.arange(6) % 3, seed=1); b = torch.rand(1)
    assert a == b and G.training
    torch.testing.assert_close(generate(G, torch.arange(6) % 3, seed=1), x1)
    assert sample_grid(G, n=2).shape == (3*34 + 2, 2*34 + 2, 3)

# --- config and training
def test_config_errors():
    with pytest.raises(ValueError, match='n_critic=0'): WGANConfig(n_critic=0)
    with pytest.raises(ValueError, match='bs=1'): WGANConfig(bs=1)
    with pytest.raises(ValueError, match='lr_d'): WGANConfig(lr_d=0.)
    with pytest.raises(ConfigError, match="did you mean 'gp_lambda'"): from_dict(WGANConfig, dict(gp_lamda=5))
    with pytest.raises(ValueError, match='n_critic=0'): train_wgan(dict(TINY, n_critic=0), toy())
    with pytest.raises(ValueError, match='n_classes=2'): train_wgan(dict(TINY, n_classes=2), toy())

def test_run_dir_artefacts(tmp_path):
    r = train_wgan(dict(TINY, mu=1., bias_per_class=True), toy(), tmp_path)
    assert [h['step'] for h in r.history] == [2, 4] and r.metrics['step'] == 4
    for f in ('models/wgan_last.pt', 'models/synth_clf.pt', 'models/attr_clf.pt', 'results/gan_metrics.json',
              'results/gan_history.json', 'visualizations/gan_samples_000002.png', 'visualizations/gan_samples.png',
              'visualizations/gan_fid.png'):
        assert (tmp_path/f).is_file(), f
    assert list((tmp_path/'tensorboard'/'gan').glob('events.out.tfevents*'))
    m = json.loads((tmp_path/'results'/'gan_metrics.json').read_text())
    assert {'fid_synthmm', 'kid_synthmm', 'ssim_nearest', 'diversity', 'conditional_accuracy', 'fairness_discrepancy',
            'classifier_acc', 'attr_clf_acc', 'train_time_s'} <= set(m)
    st = load_state(tmp_path/'models'/'wgan_last.pt')
    assert {'G', 'D', 'opt_G', 'opt_D', 'attr_clf', 'step', 'rng', 'history'} <= set(st) and st['step'] == 4
    assert r.history[-1]['l_bias'] > 0

def test_exact_resume(tmp_path):
    a = train_wgan(dict(TINY, steps=4), toy(), tmp_path/'a')
    train_wgan(dict(TINY, steps=2), toy(), tmp_path/'b')
    b = train_wgan(dict(TINY, steps=4), toy(), tmp_path/'b')
    for k, v in a.G.state_dict().items(): torch.testing.assert_close(b.G.state_dict()[k], v, rtol=0, atol=0)
    for k, v in a.D.state_dict().items(): torch.testing.assert_close(b.D.state_dict()[k], v, rtol=0, atol=0)
    strip = lambda h: [{k: v for k, v in e.items() if k != 'time_s'} for e in h]
    assert strip(a.history) == strip(b.history)
    # resuming a finished run only re-reads it; another architecture is refused
    c = train_wgan(dict(TINY, steps=4), toy(), tmp_path/'b')
    assert strip(c.history) == strip(a.history)
    with pytest.raises(ValueError, match='checkpoint has'): train_wgan(dict(TINY, steps=6, g_dim=16), toy(), tmp_path/'b')

def test_nan_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    train_wgan(dict(TINY, steps=2), toy(), tmp_path)
    ck = tmp_path/'models'/'wgan_last.pt'; before = ck.read_bytes()
    calls = {'n': 0}; real_gp = gan.gradient_penalty
    def bad_gp(*a, **k):
        calls['n'] += 1
        return real_gp(*a, **k) * (float('nan') if calls['n'] == 3 else 1.)
    monkeypatch.setattr(gan, 'gradient_penalty', bad_gp)
    with pytest.raises(FloatingPointError, match='generator step 4.*loss_d.*wgan_last.pt'):
        train_wgan(dict(TINY, steps=6, ckpt_every=1), toy(), tmp_path)   # step 3 is saved (good), step 4 fails
    st = load_state(ck)
    assert st['step'] == 3 and all(torch.isfinite(v).all() for v in st['G'].values() if v.is_floating_point())
    assert ck.read_bytes() != before

def test_from_config(tmp_path):
    cfg = dict(seed=1, device='cpu', data=dict(n_classes=3, size=32, n_train=48), gan=dict(TINY, steps=2))
    r = train_wgan_from_config(cfg, tmp_path/'a')
    assert r.cfg.seed == 1 and r.G.n_classes == 3 and (tmp_path/'a'/'config.yaml').is_file()
    (tmp_path/'c.yaml').write_text(yaml.safe_dump(dict(cfg, gan=dict(TINY, steps=2, seed=5))))
    assert train_wgan_from_config(tmp_path/'c.yaml', tmp_path/'b').cfg.seed == 5
    with pytest.raises(ConfigError, match='gan.n_critc'): train_wgan_from_config(dict(cfg, gan=dict(n_critc=1)), tmp_path/'c')
    with pytest.raises(ConfigError, match='size=30'): train_wgan_from_config(dict(cfg, data=dict(size=30)), tmp_path/'c')

def test_killed_and_resumed_run_shows_one_tensorboard_stream(tmp_path, monkeypatch):
    "Killed between checkpoints, then resumed: TensorBoard shows one value per step, those of an uninterrupted run."
    import time
    from xaimm_nb.train import tensorboard_scalars
    cfg = dict(TINY, steps=4, ckpt_every=2, eval_every=2)
    train_wgan(cfg, toy(), tmp_path/'a')
    ws, real_w, real_f = [], gan._writer, gan._finite
    monkeypatch.setattr(gan, '_writer', lambda *a: ws.append(real_w(*a)) or ws[-1])
    def killed(step, **losses):
        if step == 4: raise RuntimeError('killed')   # in step 4: steps 1-3 are logged, the checkpoint is step 2's
        real_f(step, **losses)
    monkeypatch.setattr(gan, '_finite', killed)
    with pytest.raises(RuntimeError, match='killed'): train_wgan(cfg, toy(), tmp_path/'b')
    ws[0].close()                                       # its events reached the disk before the kill
    assert load_state(tmp_path/'b'/'models'/'wgan_last.pt')['step'] == 2
    monkeypatch.setattr(gan, '_finite', real_f)
    time.sleep(1)                                       # event files sort by their creation second
    train_wgan(cfg, toy(), tmp_path/'b')
    assert len(list((tmp_path/'b'/'tensorboard'/'gan').glob('events.out.tfevents.*'))) == 2
    a, b = (tensorboard_scalars(tmp_path/k/'tensorboard'/'gan') for k in 'ab')
    assert [s for s, _ in b['gan/loss_g']] == [1, 2, 3, 4] and [s for s, _ in b['gan/fid_synthmm']] == [2, 4]
    assert b == a

# --- the faster step, the moving average of G, built-in digits (issue #22)
def test_fast_step_layout_and_fallback():
    "fast=True: channels-last networks, fused Adam; autocast only where bf16 is native, a no-op context otherwise."
    r = train_wgan(dict(TINY, steps=1, eval_every=0, fast=True), toy())
    conv = r.D.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    p = train_wgan(dict(TINY, steps=1, eval_every=0, fast=False), toy())
    assert p.D.net[0].weight.is_contiguous()
    assert isinstance(gan._autocast(torch.device('cpu'), False)(), contextlib.nullcontext)
    with gan._autocast(torch.device('meta'), True)(): assert not torch.is_autocast_enabled('cpu')

def test_fast_and_plain_steps_agree():
    "The same algorithm: from one seed, two steps of fast and plain give close losses (bf16 rounding only)."
    a, b = (train_wgan(dict(TINY, steps=2, eval_every=1, fast=f), toy()).history for f in (True, False))
    for k in ('loss_d', 'loss_g', 'w_dist', 'gp'):
        np.testing.assert_allclose([h[k] for h in a], [h[k] for h in b], rtol=.1, atol=.05, err_msg=k)

def test_ema_known_answer():
    "One update at step n mixes with weight 1 - min(decay, (1+n)/(10+n)); buffers are copied."
    a, m = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad(): m.weight.fill_(3.); m.running_mean.fill_(5.)
    gan._ema(a, m, .999, 0)   # warm-up: decay 0.1 at step 0
    torch.testing.assert_close(a.weight, torch.full((2,), 1 + .9*2.))
    torch.testing.assert_close(a.running_mean, m.running_mean)
    gan._ema(a, m, .5, 1000)
    torch.testing.assert_close(a.weight, torch.full((2,), (2.8 + 3.) / 2))

def test_ema_generator_is_evaluated_saved_and_resumed(tmp_path):
    a = train_wgan(dict(TINY, steps=4, ema=.9), toy(), tmp_path/'a')
    assert a.G is not a.G_train and not torch.equal(a.G.out[0].weight, a.G_train.out[0].weight)
    st = load_state(tmp_path/'a'/'models'/'wgan_last.pt')
    for k, v in a.G.state_dict().items(): torch.testing.assert_close(st['G_ema'][k], v)
    train_wgan(dict(TINY, steps=2, ema=.9), toy(), tmp_path/'b')
    b = train_wgan(dict(TINY, steps=4, ema=.9), toy(), tmp_path/'b')
    for k, v in a.G.state_dict().items(): torch.testing.assert_close(b.G.state_dict()[k], v, rtol=0, atol=0)
    assert train_wgan(dict(TINY, steps=1), toy()).G is not None
    with pytest.raises(ValueError, match='ema'): WGANConfig(ema=1.)

def test_digits_data_and_held_out_evaluation(tmp_path):
    tr, te = gan.digits_gan_data('train'), gan.digits_gan_data('test')
    assert len(tr['visual']) + len(te['visual']) == 1797 and set(te['visual'].tolist()) == set(range(10))
    assert tr['images'].min() >= -1 and tr['images'].max() <= 1
    # the ink colour is the attribute: orange pixels have less blue than red, white ones the same
    ink = tr['images'][:, :, 16, 16]
    on = ink[:, 0] > 0
    assert ((ink[on, 2] < ink[on, 0]) == tr['s'][on].bool()).all()
    with pytest.raises(ValueError, match="split='val'"): gan.digits_gan_data('val')
    # held-out evaluation: FID reference and classifier accuracy on eval_data (here a 20-image subset of it)
    sub = {k: v[:20] for k, v in te.items()}
    r = train_wgan(dict(TINY, steps=1, eval_every=0, eval_n=500), tr, tmp_path, eval_data=sub, fid_name='digits')
    assert r.metrics['n'] == 20 and 'fid_digits' in r.metrics
    acc = gan.conditional_accuracy(r.classifier, gan_data(sub)['images'], sub['visual']).item()
    assert r.metrics['classifier_acc'] == pytest.approx(acc)

def test_gan_dataset_config(tmp_path):
    "`gan.dataset: digits` trains on the digits, not on the data section's SynthMM; unknown names are refused."
    cfg = dict(seed=0, device='cpu', data=dict(size=32, n_train=16, n_valid=8, n_test=8),
               gan=dict(TINY, steps=1, eval_every=0, dataset='digits'))
    data, kw = gan.gan_inputs(cfg['data'], WGANConfig(dataset='digits'))
    assert kw['fid_name'] == 'digits' and len(kw['eval_data']['visual']) == 360 and len(data['visual']) == 1437
    with pytest.raises(ValueError, match="dataset='mnist'"): WGANConfig(dataset='mnist')
    from xaimm_nb.pipeline import run_pipeline
    run_pipeline(dict(cfg, stages=['gan']), tmp_path)
    m = json.loads((tmp_path/'results'/'gan_metrics.json').read_text())
    assert m['n'] == 24 and 'fid_digits' in m and 'fid_synthmm' not in m

def test_acgan_head_learns_the_real_classes():
    "acgan > 0: the critic's class head is trained by cross-entropy on the real images (above chance on 3 classes)."
    torch.manual_seed(0)
    d = toy(96)
    r = train_wgan(dict(TINY, steps=30, eval_every=0, acgan=1.), d)
    x = gan_data(d)['images']
    with torch.no_grad(): _, logits = r.D(x, torch.zeros(len(x), dtype=torch.long), logits=True)
    assert (logits.argmax(1) == torch.as_tensor(d['visual'])).float().mean() > .9
    assert r.history[-1]['l_aux_d'] < np.log(3)  # below the untrained head's loss
    with pytest.raises(ValueError, match='acgan_g'): WGANConfig(acgan_g=-1.)

def test_acgan_off_is_the_plain_critic():
    "acgan = 0 (the default): no class head and no auxiliary losses in the history."
    r = train_wgan(dict(TINY, steps=2, eval_every=1), toy())
    assert r.D.aux is None and 'l_aux_d' not in r.history[-1]
