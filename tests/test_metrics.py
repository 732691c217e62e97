"Dense edge cases for xaimm_nb.metrics and xaimm_nb.metrics.gen (known answers and independent references)."
import itertools, math, warnings
import numpy as np, pytest, scipy.linalg, scipy.ndimage, torch, torch.nn as nn
from sklearn.metrics import f1_score, confusion_matrix
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity
from xaimm_nb.metrics import *
from xaimm_nb.metrics import _otsu, _blur
from xaimm_nb.metrics.gen import *

g = lambda s=0: torch.Generator().manual_seed(s)

# ---------- classification
@pytest.mark.parametrize('seed', range(5))
def test_f1_confusion_vs_sklearn(seed):
    y, p = torch.randint(0, 5, (40,), generator=g(seed)), torch.randint(0, 4, (40,), generator=g(seed + 10))
    assert np.array_equal(confusion(p, y, 6).numpy(), confusion_matrix(y, p, labels=range(6)))
    assert math.isclose(macro_f1(p, y).item(), f1_score(y, p, average='macro'), rel_tol=1e-6)
    assert math.isclose(macro_f1(p, y, K=7).item(), f1_score(y, p, average='macro', labels=range(7), zero_division=0), rel_tol=1e-6)

def test_group_accuracy_1d_and_logits():
    y = torch.tensor([0, 0, 1, 1]); logits = torch.tensor([[2., 0], [0, 1], [0, 3], [0, 1]])
    grp, acc = group_accuracy(logits, y, torch.tensor([5, 5, 2, 7]))
    assert grp.tolist() == [2, 5, 7] and acc.tolist() == [1., .5, 1.]
    assert worst_group_accuracy(logits, y, torch.tensor([5, 5, 2, 7])) == .5

# ---------- localisation
@pytest.mark.parametrize('seed', range(8))
def test_otsu_matches_skimage(seed):
    m = torch.rand(4, 300, generator=g(seed)) ** (1 + seed)          # skewed distributions
    m[1] = torch.cat([torch.rand(150, generator=g(seed)) * .2, .5 + torch.rand(150, generator=g(seed + 1)) * .5])
    thr = torch.tensor([threshold_otsu(r.numpy().astype(np.float64)) for r in m])
    assert torch.allclose(_otsu(m), thr.float(), rtol=1e-5, atol=1e-7)
    b = binarize(m, 'otsu')
    assert (b == (m > thr.float()[:, None])).float().mean() > .99

def test_topk_area_matched_iou_equals_rank_identity():
    m, G = torch.rand(6, 10, 10, generator=g(1)), torch.rand(6, 10, 10, generator=g(2)) > .7
    area = G.flatten(1).float().mean(1)
    b = binarize(m, 'topk', area)
    assert (b.flatten(1).sum(1) == G.flatten(1).sum(1)).all()       # no ties: exactly |G| pixels
    r = relevance_rank(m, G)
    assert torch.allclose(iou_xai(m, G, 'topk', area), r / (2 - r), atol=1e-6)

def test_sweep_is_mean_over_thresholds():
    m, G = torch.rand(5, 12, 12, generator=g(3)), torch.rand(5, 12, 12, generator=g(4)) > .5
    ref = torch.stack([iou_xai(m, G, 'frac', t) for t in np.linspace(.05, .95, 19)], 1).mean(1)
    assert torch.allclose(iou_xai(m, G, 'sweep'), ref, atol=1e-6)
    refd = torch.stack([dice(m, G, 'frac', t) for t in np.linspace(.05, .95, 19)], 1).mean(1)
    assert torch.allclose(dice(m, G, 'sweep'), refd, atol=1e-6)

def test_relevance_mass_vs_loop():
    m, G = torch.randn(5, 7, 7, generator=g(5)), torch.rand(5, 7, 7, generator=g(6)) > .6
    ref = [np.clip(a, 0, None)[b].sum() / np.clip(a, 0, None).sum() for a, b in zip(m.numpy(), G.numpy())]
    assert np.allclose(relevance_mass(m, G).numpy(), ref, atol=1e-6)

def test_relevance_rank_ties_are_expected_value():
    m = torch.tensor([[3., 2, 2, 2, 0, 0]]); G = torch.tensor([[True, False, True, False, False, True]])
    # k = 3: the 3 is in; two of the three tied 2s are taken at random, one of which (1/3 of them) is in G
    exp = np.mean([(1 + sum(G[0, j].item() for j in c)) / 3 for c in itertools.combinations([1, 2, 3], 2)])
    assert math.isclose(relevance_rank(m, G).item(), exp, rel_tol=1e-6)

@pytest.mark.parametrize('tol', [0, 1, 2.5, 4])
def test_pointing_tolerance_vs_distance_transform(tol):
    m = torch.rand(6, 15, 15, generator=g(7)); G = torch.zeros(6, 15, 15, dtype=torch.bool); G[:, 5:9, 10:13] = True
    ref = []
    for a, b in zip(m.numpy(), G.numpy()):
        dist = scipy.ndimage.distance_transform_edt(~b)
        ref.append(float((dist[a == a.max()] <= tol).any()))
    assert pointing_game(m, G, tol).tolist() == ref

def test_localisation_errors_and_empty():
    m = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match='does not match'): relevance_mass(m, torch.ones(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match='unknown'): binarize(m, 'median')
    with pytest.raises(TypeError, match='torch.Tensor'): iou_xai(m.numpy(), m > .5)
    with pytest.raises(ValueError, match='tolerance needs image maps'): pointing_game(m.flatten(1), m.flatten(1) > .5, 2)
    empty = torch.zeros(2, 4, 4, dtype=torch.bool)
    for fn in (iou_xai, dice, pointing_game, relevance_mass, relevance_rank): assert fn(m, empty).isnan().all()
    assert pointing_game(torch.zeros(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool)).item() == 0  # no relevance: miss

# ---------- faithfulness
w = torch.tensor([[4., 3], [2, 1]])
lin = lambda x: (x * w).sum((1, 2, 3))

def test_insertion_deletion_known_curves():
    r = insertion_deletion(lin, torch.ones(1, 1, 2, 2), w[None], n_steps=4, ins_baseline='zero')
    assert r['deletion_curve'].tolist() == [[10., 6, 3, 1, 0]] and r['insertion_curve'].tolist() == [[0., 4, 7, 9, 10]]
    assert math.isclose(r['deletion'].item(), np.trapezoid([10, 6, 3, 1, 0], dx=.25))
    assert math.isclose(r['insertion'].item(), np.trapezoid([0, 4, 7, 9, 10], dx=.25))

def test_baselines():
    x = torch.rand(2, 3, 9, 9, generator=g(8))
    assert torch.allclose(_blur(torch.full((1, 2, 6, 6), .3)), torch.full((1, 2, 6, 6), .3))
    r = perturbation_auc(lin_c := (lambda x: x.sum((1, 2, 3))), x, torch.rand(2, 9, 9), baseline='mean', steps=(0, 1))
    assert torch.allclose(r['curve'][:, 0], r['curve'][:, 1], rtol=1e-5)   # replacing all by the mean keeps the sum
    with pytest.raises(ValueError, match='baseline'): perturbation_auc(lin_c, x, torch.rand(2, 9, 9), baseline='noise')
    with pytest.raises(ValueError, match='input resolution'): perturbation_auc(lin_c, x, torch.rand(2, 8, 8))

def _bow_batch():
    tw = torch.tensor([0., 4, 3, 2, 1, 0, 0, 5])
    ids = torch.tensor([[0, 1, 2, 3, 4, 6, 0], [0, 7, 1, 6, 0, 0, 0]])    # 6 = [SEP]; second text padded
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    return tw, (lambda b: (tw[b['input_ids']] * b['attention_mask']).sum(1)), dict(input_ids=ids, attention_mask=am)

def test_text_perturbation_varying_lengths():
    tw, bow, b = _bow_batch()
    r = perturbation_auc(bow, b, tw[b['input_ids']], modality='text', steps=(0, .25, .5, 1))
    # text 0: 4 content tokens, keep 3, 2, 0; text 1: 2 content tokens (5, 4), keep floor(1.5)=1, 1, 0
    assert r['curve'].tolist() == [[10., 6, 3, 0], [9., 4, 4, 0]]
    keep = torch.zeros_like(b['attention_mask'], dtype=torch.bool); keep[:, 1] = True   # protect token 1 only
    r = perturbation_auc(bow, b, tw[b['input_ids']], modality='text', steps=(1,), keep=keep)
    assert r['curve'].tolist() == [[4.], [5.]]
    with pytest.raises(TypeError, match='batch dict'): perturbation_auc(bow, b['input_ids'], tw[b['input_ids']], modality='text')

def test_confidence_change_edge_cases():
    tw, bow, b = _bow_batch()
    r = confidence_change(bow, b, tw[b['input_ids']], 'text', replace_id=0)
    assert r['score_perturbed'].tolist() == [7., 5.]          # text 1: median of (5, 4) = 4.5, only 5 kept
    neg = lambda x: -lin(x)
    r = confidence_change(neg, torch.ones(1, 1, 2, 2), w[None])
    assert r['drop'].item() == 0 and r['drop_rel'].isnan().all() and r['increase'].item() == 100
    r = confidence_change(lin, torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2))  # constant map -> all zeros
    assert r['score_perturbed'].item() == 0
    with pytest.raises(ValueError, match='modality'): confidence_change(lin, torch.ones(1, 1, 2, 2), w[None], 'audio')

def test_class_scores_target_and_ties_deterministic():
    f = lambda x: torch.stack([x.mean((1, 2, 3)), torch.zeros(len(x))], 1)
    x = torch.ones(2, 1, 4, 4)
    r1, r2 = perturbation_auc(f, x, torch.zeros(2, 4, 4)), perturbation_auc(f, x, torch.zeros(2, 4, 4))
    assert torch.equal(r1['curve'], r2['curve'])
    r = perturbation_auc(f, x, torch.rand(2, 4, 4), target=1)
    assert (r['curve'] == 0).all() and r['acc_curve'][:, 0].tolist() == [0., 0.]
    with pytest.raises(ValueError, match='f: must return'): perturbation_auc(lambda x: x, x, torch.rand(2, 4, 4))

def test_summarize():
    df = summarize({'a': torch.tensor([1., 3, float('nan')]), 'b': [2., 2.]})
    assert df.loc['a'].tolist() == [2., math.sqrt(2), 2] and df.loc['b', 'std'] == 0
    with pytest.raises(ValueError, match="'c' has shape"): summarize({'c': torch.zeros(2, 3)})
    with pytest.raises(ValueError, match='empty'): summarize({})

# ---------- generative
def _spd(d, seed, rank=None):
    x = torch.randn(d, rank or 2 * d, generator=g(seed), dtype=torch.float64); return x @ x.T / x.shape[1]

@pytest.mark.parametrize('d,rank', [(8, None), (32, None), (32, 10)])
def test_frechet_three_paths_agree(d, rank):
    s1, s2 = _spd(d, 1, rank), _spd(d, 2, rank)
    m1, m2 = torch.randn(d, generator=g(3), dtype=torch.float64), torch.randn(d, generator=g(4), dtype=torch.float64)
    base = ((m1 - m2)**2).sum() + s1.trace() + s2.trace()
    ref_scipy = base - 2 * np.trace(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real)
    ref_eig = base - 2 * torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    ours = frechet_distance(m1, s1, m2, s2)
    assert math.isclose(ours.item(), float(ref_scipy), rel_tol=1e-6)   # also for rank-deficient (N < D) covariances
    assert math.isclose(ours.item(), ref_eig.item(), rel_tol=1e-6)
    assert math.isclose(ours.item(), frechet_distance(m2, s2, m1, s1).item(), rel_tol=1e-9)

def test_frechet_shape_errors_and_small_n_warning():
    with pytest.raises(ValueError, match='s2'): frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(4))
    with pytest.warns(UserWarning, match='N=5 samples < D=8'): feature_stats(torch.randn(5, 8))
    with pytest.raises(ValueError, match='N >= 2'): feature_stats(torch.randn(1, 8))
    with pytest.raises(ValueError, match='extractor'): fid(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8))

def _kid_naive(x, y):
    k = lambda a, b: (a @ b / len(a) + 1) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy

def test_kid_vs_naive_and_errors():
    x, y = torch.randn(12, 4, generator=g(1), dtype=torch.float64), torch.randn(12, 4, generator=g(2), dtype=torch.float64) + .5
    v = kid(x, y, subsets=3, subset_size=12)   # full sets: every subset is a permutation of all samples
    assert torch.allclose(v, torch.full((3,), float(_kid_naive(x.numpy(), y.numpy())), dtype=torch.float64))
    with pytest.raises(ValueError, match='subset_size'): kid(x, y, subset_size=13)
    assert torch.equal(kid(x, y, 5, 6, seed=1), kid(x, y, 5, 6, seed=1))

@pytest.mark.parametrize('shape,rng', [((2, 3, 20, 17), 1.), ((2, 1, 11, 11), 255.), ((3, 16, 16), 2.)])
def test_ssim_vs_skimage(shape, rng):
    x = torch.rand(*shape, generator=g(5), dtype=torch.float64) * rng
    y = (x + .1 * rng * torch.randn(*shape, generator=g(6), dtype=torch.float64)).clamp(0, rng)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=rng)
    ref = [structural_similarity(a.numpy(), b.numpy(), channel_axis=0 if a.ndim == 3 else None, **kw) for a, b in zip(x, y)]
    assert np.allclose(ssim(x, y, rng).numpy(), ref, atol=1e-8)
    assert np.allclose(ssim(x.float(), y.float(), rng).numpy(), ref, atol=1e-4)

def test_ssim_uint8_and_errors():
    x = (torch.rand(2, 3, 16, 16, generator=g(7)) * 255).to(torch.uint8)
    assert torch.allclose(ssim(x, x, 255.), torch.ones(2))
    with pytest.raises(ValueError, match='at least 11x11'): ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1.)
    with pytest.raises(ValueError, match='differs'): ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15), 1.)

def test_nearest_real_chunking_and_diversity_sampling():
    real, rl = torch.rand(30, 1, 12, 12, generator=g(1)), torch.arange(30) % 3
    fake, fl = torch.rand(10, 1, 12, 12, generator=g(2)), torch.arange(10) % 3
    s1, i1 = nearest_real_ssim(fake, fl, real, rl, 1., bs=1)
    s2, i2 = nearest_real_ssim(fake, fl, real, rl, 1.)
    assert torch.equal(i1, i2) and (rl[i1] == fl).all()
    d = torch.cdist(fake.flatten(1), real.flatten(1)).masked_fill(fl[:, None] != rl[None], float('inf'))
    assert torch.equal(i1, d.argmin(1))
    div = intra_class_diversity(fake, fl, 1., max_pairs=2, seed=3)
    assert torch.equal(div, intra_class_diversity(fake, fl, 1., max_pairs=2, seed=3)) and div.shape == (3,)
    assert intra_class_diversity(fake, torch.tensor([0] + [2]*9), 1.)[:2].isnan().all()

def test_fairness_discrepancy_forms():
    r = fairness_discrepancy(torch.tensor([2, 2, 2]), 3, reference=torch.tensor([1/3, 1/3, 1/3], dtype=torch.float64))
    assert math.isclose(r['fd_kl'], math.log(3)) and math.isclose(r['fd_l1'], 4/3)
    assert math.isclose(fairness_discrepancy(torch.tensor([1/3, 2/3]), 2, torch.tensor([1, 1, 0]))['fd_l2'], 0, abs_tol=1e-7)
    assert fairness_discrepancy(torch.tensor([0, 1]), 2, reference=torch.tensor([0, 0]))['fd_kl'] == math.inf
    with pytest.raises(ValueError, match='labels must lie in 0..1'): fairness_discrepancy(torch.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match='expected 3 classes'): fairness_discrepancy(torch.rand(4, 2), 3)

def test_extractor_mode_restored_and_shape_check():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(.5)).train()
    with pytest.raises(ValueError, match='features \\[N,D\\]'): features(m, torch.rand(4, 1, 8, 8))
    assert m.training
    clf = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).train()
    conditional_accuracy(clf, torch.rand(5, 1, 4, 4), torch.zeros(5, dtype=torch.long), bs=2)
    assert clf.training
    assert isinstance(nn.Linear(2, 2), FeatureExtractor)

def test_inception_extractor_roundtrip(tmp_path):
    from torchvision.models import inception_v3
    p = tmp_path / 'inc.pth'
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), p)
    ext = inception_extractor(p)
    f = features(ext, torch.rand(2, 1, 32, 32))
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    torch.save({'fc.weight': torch.zeros(3)}, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match='bad.pth: not a torchvision inception_v3 state dict'): inception_extractor(tmp_path / 'bad.pth')
    with pytest.raises(FileNotFoundError, match='nothing is downloaded'): inception_extractor(tmp_path / 'none.pth')
