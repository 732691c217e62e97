"Edge cases for xaimm_nb.fairness.r2r: CAVs, SpRAy, P-ClArC, the revise losses, fine-tuning and the loop's bookkeeping."
import copy, math
import numpy as np, pytest, torch, torch.nn as nn, torch.nn.functional as F
from xaimm_nb.core import from_dict, to_dict
from xaimm_nb.explain.core import model_call
from xaimm_nb.fairness.r2r import *
from xaimm_nb.fairness.r2r import _layer, _upstream, _take, _key

g = lambda s=0: torch.Generator().manual_seed(s)

class Enc(nn.Module):
    def __init__(s):
        super().__init__(); s.c1, s.bn, s.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3, padding=1)
    @property
    def cam_layer(s): return s.c2
    def forward(s, x): return F.relu(s.c2(F.relu(s.bn(s.c1(x)))))

class MM(nn.Module):
    "Multimodal toy: image features and token embeddings concatenated into a linear head."
    def __init__(s, k=3):
        super().__init__()
        s.image_encoder, s.text_encoder, s.head = Enc(), nn.Module(), nn.Linear(10, k)
        s.text_encoder.embeddings = nn.Embedding(5, 4)
    def forward(s, images, input_ids, attention_mask):
        return s.head(torch.cat([s.image_encoder(images).mean((2, 3)), s.text_encoder.embeddings(input_ids).mean(1)], 1))

def batch(n=12, seed=0, art=None):
    r = g(seed)
    a = torch.randint(0, 2, (n,), generator=r) if art is None else torch.full((n,), art)
    x = torch.randn(n, 3, 16, 16, generator=r)
    m = torch.zeros(n, 16, 16, dtype=torch.bool); m[:, :4, :4] = a.bool()[:, None, None]
    x[:, :, :4, :4] += 3 * a[:, None, None, None]
    return dict(images=x, input_ids=torch.randint(0, 5, (n, 3), generator=r), attention_mask=torch.ones(n, 3, dtype=torch.long),
                y=torch.randint(0, 3, (n,), generator=r), protected=torch.randint(0, 2, (n,), generator=r), artefact=a,
                masks=dict(artefact=m), captions=[f'c{i}' for i in range(n)])

@pytest.fixture
def mm():
    torch.manual_seed(0); return MM().eval()

# ---------- CAV
def test_signal_cav_is_within_class_mean_difference():
    # the artefact is confounded with class 1 (shifted along e0); within classes it moves along e1
    X = torch.tensor([[0., 0], [0, 1], [5, 0], [5, 1], [5, 1]])
    a, y = [0, 1, 0, 1, 1], [0, 0, 1, 1, 1]
    assert torch.allclose(fit_cav(X, a, y).v, torch.tensor([0., 1]))
    v_naive = fit_cav(X, a).v                               # without y the class difference leaks in
    assert v_naive[0] > 0 and torch.allclose(v_naive.norm(), torch.tensor(1.))

@pytest.mark.parametrize('kind', ['signal', 'svm', 'logistic'])
def test_cav_kinds_separate(kind):
    r = g(1)
    X = torch.randn(200, 8, generator=r); a = torch.rand(200, generator=r) < .3
    X[a] += torch.tensor([2., -1, 0, 0, 0, 0, 0, 0])
    c = fit_cav(X, a, kind=kind, layer='x')
    assert c.layer == 'x' and c.kind == kind and math.isclose(c.v.norm().item(), 1, rel_tol=1e-5)
    assert ((X[a] @ c.v).mean() - (X[~a] @ c.v).mean()) > 1
    assert torch.allclose(c.z_clean, X[~a].mean(0), atol=1e-5) and torch.allclose(c.z_art, X[a].mean(0), atol=1e-5)

@pytest.mark.parametrize('args, msg', [
    ((torch.rand(4, 2), [1, 1, 1, 1]), 'need both artefact and clean'),
    ((torch.rand(4, 2), [1, 0, 1]), 'one artefact flag per row'),
    ((torch.rand(4, 2), [1, 1, 0, 0], [0, 0, 1, 1]), 'no class has both'),
    ((torch.ones(4, 2), [1, 0, 1, 0]), 'same mean'),
])
def test_cav_errors(args, msg):
    with pytest.raises(ValueError) as e: fit_cav(*args)
    assert msg in str(e.value)
    with pytest.raises(ValueError, match="use 'signal'"): fit_cav(torch.rand(4, 2), [1, 0, 1, 0], kind='ridge')

# ---------- SpRAy
def test_spray_eigengap_finds_three_strategies():
    r = g(2)
    m = torch.rand(60, 16, 16, generator=r) * .05
    m[:20, :4, :4] += 1; m[20:40, 6:10, 6:10] += 1; m[40:, 12:, 12:] += 1
    sp = spray(m, max_k=6)
    assert sp['k'] == 3 and len(sp['eigenvalues']) == 7
    for blk in (slice(0, 20), slice(20, 40), slice(40, 60)): assert len(set(sp['labels'][blk])) == 1

def test_spray_small_inputs():
    with pytest.raises(ValueError, match='at least 4 maps'): spray(torch.rand(3, 8, 8))
    sp = spray(torch.rand(5, 8, 8, generator=g(0)), max_k=10)  # max_k is capped by N - 1
    assert 2 <= sp['k'] <= 4

def test_spray_report_counts_clean_samples_as_zero():
    labels = np.array([0, 0, 0, 1, 1, 1])
    rel = np.array([.6, np.nan, np.nan, .3, .3, .3])   # cluster 0: one artefact sample with high relevance
    a = np.array([1, 0, 0, 1, 1, 1])
    r = spray_report(labels, rel, a)
    assert r['cluster'] == 1 and r['purity'] == 1 and r['recall'] == .75 and r['recovered']  # .3 > .6/3
    assert r['base_rate'] == 4/6

# ---------- P-ClArC
def test_p_clarc_vector_layer_is_exact_and_stacks():
    lin = nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.Linear(4, 2))
    X = torch.randn(30, 4, generator=g(3))
    acts = lin[0](X).detach()
    a = (torch.arange(30) % 3 == 0)
    c = fit_cav(acts, a, layer='1')
    seen = []
    with p_clarc(lin, [c]):                                                             # hooks run in order: capture after P-ClArC
        h = lin[1].register_forward_hook(lambda m, i, o: seen.append(o.detach())); lin(X); h.remove()
    assert torch.allclose(seen[0] @ c.v, (c.z_clean @ c.v).expand(30), atol=1e-5)     # every projection = the clean mean's
    orth = acts - (acts @ c.v)[:, None] * c.v
    assert torch.allclose(seen[0] - (seen[0] @ c.v)[:, None] * c.v, orth, atol=1e-5)  # the rest untouched
    c2 = fit_cav(acts, torch.arange(30) % 2 == 0, layer='1')
    with p_clarc(lin, [c, c2]): y2 = lin(X)
    with p_clarc(lin, []): y0 = lin(X)
    assert torch.allclose(y0, lin(X)) and not torch.allclose(y2, y0)

def test_p_clarc_feature_map_shifts_every_position(mm):
    b = batch()
    c = fit_cav(activations(mm, [b]), b['artefact'], layer=_layer(mm)[1])
    out = {}
    def run(k):
        h = mm.image_encoder.c2.register_forward_hook(lambda m, i, o: out.update({k: o.detach()})); model_call(mm, b); h.remove()
    run('raw')
    with p_clarc(mm, [c]): run('proj')
    d = (out['raw'] - out['proj']).permute(0, 2, 3, 1)                                # [B,h,w,C]
    shift = d[:, :1, :1]
    assert torch.allclose(d, shift.expand_as(d), atol=1e-5)                           # same shift at every position
    assert torch.allclose(shift[:, 0, 0] / c.v, (shift[:, 0, 0] @ c.v)[:, None].expand(-1, 6), atol=1e-4)  # along v

# ---------- losses and fine-tuning
def test_rr_clarc_penalty_matches_manual_and_freezes_upstream(mm):
    b, c = batch(), None
    c = fit_cav(activations(mm, [b]), b['artefact'], layer='image_encoder.c2')
    l0 = rr_clarc_loss(mm, b, c, lam=0.)
    l1 = rr_clarc_loss(mm, b, c, lam=1e6, gen=g(5))
    # by hand: f = W·mean_p relu(a_p) + ..., so ∂(ε·f)/∂a_p = 1[a_p > 0]·(Wᵀε)/(h·w); then the spatial mean
    eps = (torch.randint(0, 2, (12, 3), generator=g(5)) * 2 - 1).float()
    with torch.no_grad(): a = mm.image_encoder.c2(F.relu(mm.image_encoder.bn(mm.image_encoder.c1(b['images']))))
    gbar = (eps @ mm.head.weight[:, :6]) * (a > 0).float().mean((2, 3)) / 256
    assert torch.allclose((l1 - l0) / 1e6, (gbar @ c.v).pow(2).mean(), rtol=1e-3)
    assert torch.allclose(l0, F.cross_entropy(model_call(mm, b), b['y']))
    l1.backward()
    assert mm.image_encoder.c1.weight.grad is None and mm.head.weight.grad is not None

def test_rrr_penalty_zero_without_masks_and_positive_with(mm):
    clean, art = batch(art=0), batch(art=1)
    assert torch.allclose(rrr_loss(mm, clean, lam=100.), F.cross_entropy(model_call(mm, clean), clean['y']))
    assert rrr_loss(mm, art, lam=100.) > F.cross_entropy(model_call(mm, art), art['y'])
    rrr_loss(mm, art).backward()
    assert mm.image_encoder.c1.weight.grad is not None                                   # RRR trains the whole model

def test_upstream_excludes_the_text_tower(mm):
    up = _upstream(mm, mm.image_encoder.c2, batch())
    assert up == [mm.image_encoder.c1, mm.image_encoder.bn, mm.image_encoder.c2]
    for p in mm.image_encoder.parameters(): p.requires_grad_(False)
    assert _upstream(mm, mm.image_encoder.c2, batch()) == []

def test_finetune_frozen_bn_and_seeded(mm):
    bs = [batch(seed=i) for i in range(3)]
    m1, m2 = copy.deepcopy(mm), copy.deepcopy(mm)
    rm = mm.image_encoder.bn.running_mean.clone()
    up = _upstream(m1, m1.image_encoder.c2, bs[0])
    h1 = finetune(m1, bs, lambda m, b: rr_clarc_loss(m, b, fit_cav(activations(mm, bs), torch.cat([b['artefact'] for b in bs]), layer='image_encoder.c2')),
                  epochs=2, lr=1e-2, frozen=up, seed=3)
    assert len(h1) == 2 and not m1.training
    assert torch.equal(m1.image_encoder.bn.running_mean, rm) and torch.equal(m1.image_encoder.c1.weight, mm.image_encoder.c1.weight)
    ce = lambda m, b: F.cross_entropy(model_call(m, b), b['y'])
    assert finetune(m2, bs, ce, seed=3) == finetune(copy.deepcopy(mm), bs, ce, seed=3)

# ---------- evaluate, reveal, loop
def test_take_rows():
    b = batch()
    t = _take(b, torch.tensor([2, 5]))
    assert t['images'].shape[0] == 2 and t['masks']['artefact'].shape == (2, 16, 16) and t['captions'] == ['c2', 'c5']

def test_evaluate_nan_conventions(mm):
    e = evaluate_split(mm, [batch(art=0, seed=1)])
    assert math.isnan(e['art_rel']) and 0 <= e['acc'] <= 1
    e = evaluate_split(mm, [batch(art=1, seed=1)], artefact_class=0)
    assert 0 <= e['art_rel'] <= 1 and set(e) == {'acc', 'delta_bias', 'delta_bias_s', 'art_rel', 'art_rel_gradcam'}
    c = fit_cav(activations(mm, [batch(24)]), batch(24)['artefact'], layer='image_encoder.c2')
    e = evaluate_split(mm, [batch(art=1, seed=1)], cav=c, also=())
    assert set(e) == {'acc', 'delta_bias', 'delta_bias_s', 'art_rel', 'tcav', 'tcav_sens'} and 0 <= e['tcav'] <= 1

def test_tcav_is_the_directional_derivative_and_vanishes_under_p_clarc(mm):
    b = batch(24)
    c = fit_cav(activations(mm, [b]), b['artefact'], layer='image_encoder.c2')
    st = {}
    h = mm.image_encoder.c2.register_forward_hook(lambda m, i, o: st.update(a=o))
    z = model_call(mm, b); h.remove()
    gr, = torch.autograd.grad(z[:, 1].sum(), st['a'])
    S = gr.mean((2, 3)) @ c.v
    t = tcav(mm, [b], c, cls=1)
    assert math.isclose(t['tcav_sens'], S.abs().mean().item(), rel_tol=1e-5) and t['tcav'] == (S > 0).float().mean().item()
    assert tcav(mm, [b], c, cls=1, cavs=[c])['tcav_sens'] < 1e-6   # the projection removes every change along v

def test_paste_artefact_edits_only_the_mask():
    clean, src = batch(art=0, seed=1), batch(art=1, seed=2)
    p = paste_artefact(clean, src)
    m = src['masks']['artefact'][0]
    assert torch.equal(p['images'][:, :, m], src['images'][0][:, m][None].expand(12, -1, -1))
    assert torch.equal(p['images'][:, :, ~m], clean['images'][:, :, ~m]) and p['artefact'].eq(1).all()
    assert p['masks']['artefact'].shape == (12, 16, 16) and clean['masks']['artefact'].sum() == 0   # input untouched
    with pytest.raises(ValueError, match='no sample has an artefact mask'): paste_artefact(clean, clean)

def test_grad_sizes_and_balanced_lambda(mm):
    bs = [batch(24, seed=i) for i in range(2)]
    for b in bs: b['y'][:12] = 0
    sz = grad_sizes(mm, bs, rrr_penalty)
    assert sz['grad_ce'] > 0 and sz['grad_penalty'] > 0
    z, p = rrr_penalty(mm, bs[0])
    assert torch.allclose(rrr_loss(mm, bs[0], lam=3.), F.cross_entropy(z, bs[0]['y']) + 3 * p)
    from xaimm_nb.fairness.r2r import _revise
    for bal in (True, False):
        m = copy.deepcopy(mm)
        _, info = _revise(m, 'rrr', {}, [], bs, R2RConfig(lam_rrr=2., balance=bal, ft_epochs=1), 0)
        want = 2. * min(sz['grad_ce'] / sz['grad_penalty'], LAM_CAP) if bal else 2.   # untrained: ratio ~1e7, capped
        assert math.isclose(info['lam'], want, rel_tol=1e-4) and len(info['loss']) == 1

def test_balanced_lambda_is_capped(mm, monkeypatch):
    "λ = lam · |∇CE| / |∇penalty|, but a vanishing penalty gradient (an untrained model gave RRR λ ≈ 1e6) hits LAM_CAP."
    test = lambda gce, gp: balanced_lam(2., dict(grad_ce=gce, grad_penalty=gp))
    assert math.isclose(test(3., 1.), 6.) and math.isclose(test(1., 1e-3), 2e3)
    assert test(1., 1e-9) == test(1., 0.) == 2 * LAM_CAP and balanced_lam(2., dict(grad_ce=5., grad_penalty=1.), cap=.5) == 1.
    import xaimm_nb.fairness.r2r as R
    monkeypatch.setattr(R, 'grad_sizes', lambda *a, **k: dict(ce=1., penalty=1e-8, grad_ce=1., grad_penalty=1e-6))
    bs = [batch(24, seed=i) for i in range(2)]
    _, info = R._revise(copy.deepcopy(mm), 'rrr', {}, [], bs, R2RConfig(lam_rrr=.5, ft_epochs=1), 0)
    assert info['lam'] == .5 * LAM_CAP and LAM_CAP == 1e4

def test_diagnose_on_a_strong_artefact(mm):
    bs = [batch(24, seed=i) for i in range(2)]
    for b in bs: b['y'][:12] = 0
    d = diagnose(mm, dict(train=bs, reveal=bs, clean=[batch(art=0)], attacked=[batch(art=1)]), R2RConfig(cav='svm'))
    assert d['cav']['heldout_acc'] > .9 and d['layer'] == dict(name='image_encoder.c2', shape=[6, 16, 16],
                                                               papers=d['layer']['papers'])
    assert set(d['reliance']) == {'caption', 'blank caption', 'other caption', 'first_order', 'input_grad_share'}
    assert set(d['sizes']) == {'rrclarc', 'rrr'} and all(v['ratio'] >= 0 for v in d['sizes'].values())

def test_reveal_layer_and_cav(mm):
    bs = [batch(24, seed=i) for i in range(2)]
    for b in bs: b['y'][:12] = 0
    r = reveal(mm, bs, cls=0, layer='image_encoder.c2')
    assert r['cav'].layer == 'image_encoder.c2' and r['spray']['k'] >= 2 and r['extra'] == {}

def test_config_roundtrip_and_errors(mm):
    c = R2RConfig(methods=['rrr'], lam_rrr=3.)
    assert from_dict(R2RConfig, to_dict(c)) == c
    assert from_dict(R2RConfig, {'methods': ['pclarc', 'finetune'], 'device': None}).methods == ['pclarc', 'finetune']
    with pytest.raises(ValueError, match=r"unknown revise method\(s\) \['aclarc'\]"): r2r(mm, {}, R2RConfig(methods=['aclarc']))

def test_loop_bookkeeping(mm):
    bs = [batch(24, seed=i) for i in range(2)]
    for b in bs: b['y'][:12] = 0
    data = dict(train=bs, reveal=bs, test=bs, clean=[batch(art=0)], conflict=bs, attacked=[batch(art=1)])
    res = r2r(mm, data, R2RConfig(methods=['pclarc', 'rrr'], max_rounds=2, tol=10.))   # tol too large: nothing improves
    for k in ('pclarc', 'rrr'):
        r = res['methods'][k]
        assert len(r['rounds']) == 1 and not r['rounds'][0]['improved'] and r['final_round'] == 1
        assert r['after'] == _key(r['rounds'][0]['eval']) and r['helped'] == all(r['better'].values())
    assert len(plot_rounds(res).axes) == 6 and len(plot_relevance(res).axes) == 2
    assert 'diagnosis' in res and res['methods']['rrr']['rounds'][0]['revise']['lam'] > 0

def test_clone_and_to_batches_with_the_tiny_preset():
    from xaimm_nb.data.core import synth_datasets, get_tokenizer
    from xaimm_nb.data.synth import SynthConfig
    from xaimm_nb.models.fusion import build_model
    from xaimm_nb.fairness.r2r import _clone
    torch.manual_seed(0)
    m = build_model('tiny', n_classes=3).eval()
    ds = synth_datasets(SynthConfig(n_classes=3, size=32, n_train=10), get_tokenizer('word', pad_to='longest'), 32,
                        m.preset['mean'], m.preset['std'], splits=('train',))['train']
    bs = to_batches(ds, 4)
    assert [len(b['y']) for b in bs] == [4, 4, 2] and [len(b['y']) for b in to_batches(ds, 4, n=5)] == [4, 1]
    assert bs[0]['masks']['artefact'].shape == (4, 32, 32) and 'artefact' in bs[0]
    model_call(m, bs[0])[:, 0].sum().backward()                      # the fusion now holds attention maps in the graph
    with pytest.raises(RuntimeError): copy.deepcopy(m)
    c = _clone(m)
    assert all(torch.equal(p, q) and p is not q for p, q in zip(m.parameters(), c.parameters()))
