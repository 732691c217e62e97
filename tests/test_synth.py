"Edge cases of xaimm_nb.data.synth that would clutter the notebook."
import numpy as np, pytest
from xaimm_nb.core import from_dict, ConfigError
from xaimm_nb.data.synth import (SynthConfig, SynthMM, SHAPES, SPLITS, ROLES, TASKS, SIZES, COLOURS, GROUP_COLOURS,
                                 MATERIALS, TEXTURES, split_params, synth_vocab, show_synth)

GCOL = np.array(list(GROUP_COLOURS.values()))

def _check_masks(r, cfg):
    "Every invariant of the masks and boxes of the stacked samples `r`."
    M, S = r['masks'], cfg.size
    assert sorted(M) == ['artefact', 'background', 'object', 'protected']
    assert (sum(M[k].astype(int) for k in M) == 1).all(), "masks must be disjoint and cover the image"
    assert (M['artefact'].any((1, 2)) == (r['a'] == 1)).all()
    for img, o, p, art, s, a, b in zip(r['images'], M['object'], M['protected'], M['artefact'], r['s'], r['a'], r['boxes']):
        assert o.sum() > 0
        assert ((img == img[o][0]).all(-1) == o).all(), "object colour must be exactly on the object mask"
        assert (img[p] == GCOL[s]).all() and p[S - S//8:].sum() == p.sum()
        assert (p | o | art)[S - S//8:].all(), "every band row pixel is band, object or tag"
        if a: assert np.isin(img[art], (0, 255)).all() and (img[art] == 0).any() and (img[art] == 255).any()
        x0, y0, x1, y1 = b
        assert 0 <= x0 < x1 <= S and 0 <= y0 < y1 <= S
        assert o[y0:y1, x0:x1].sum() == o.sum() and o[y0].any() and o[y1-1].any() and o[:, x0].any() and o[:, x1-1].any()

@pytest.mark.parametrize('size', SIZES)
def test_masks_exact_at_every_size(size):
    n = 16 if size <= 64 else 6
    for cfg, sp in ((SynthConfig(size=size, rho_ya=.5), 'train'), (SynthConfig(size=size, n_groups=3, n_classes=8), 'attacked')):
        _check_masks(SynthMM(cfg, sp, n=n).arrays(), cfg)

def test_masks_many_samples():
    cfg = SynthConfig(size=32, n_classes=8, n_groups=3, task='redundant')
    for sp in ('test', 'attacked'): _check_masks(SynthMM(cfg, sp, n=200).arrays(), cfg)

@pytest.mark.parametrize('task', TASKS)
def test_determinism(task):
    cfg = SynthConfig(size=32, task=task, p_text_s=.5, p_text_a=.5)
    a, b = SynthMM(cfg, 'test', n=24).arrays(), SynthMM(SynthConfig(**vars(cfg)), 'test', n=24).arrays()
    for k in ('images', 'y', 'visual', 'prop', 's', 'a', 'boxes', 'captions', 'words', 'word_roles'):
        np.testing.assert_array_equal(np.array(a[k], dtype=object), np.array(b[k], dtype=object))
    for k in a['masks']: np.testing.assert_array_equal(a['masks'][k], b['masks'][k])
    c = SynthMM(SynthConfig(**{**vars(cfg), 'seed': 7}), 'test', n=24).arrays()
    assert not np.array_equal(a['images'], c['images']) and a['captions'] != c['captions']
    assert all((a['images'][i] != c['images'][i]).any() for i in range(24))
    ds = SynthMM(cfg, 'test', n=24)
    np.testing.assert_array_equal(ds[-1]['image'], a['images'][23])
    np.testing.assert_array_equal(ds[np.int64(5)]['image'], a['images'][5])

def test_splits_are_different_samples():
    cfg = SynthConfig(size=32)
    imgs = [SynthMM(cfg, sp, n=4).arrays()['images'] for sp in SPLITS]
    for i in range(len(SPLITS)):
        for j in range(i):
            assert not np.array_equal(imgs[i], imgs[j])

@pytest.mark.parametrize('K,G,rys,rya,c', [(2, 2, .5, .5, 1), (4, 2, .8, .8, 0), (8, 3, .95, .99, 7), (5, 3, 0., 0., 2),
                                             (3, 2, 1., 1., 0), (6, 3, .7, None, 0)])
def test_correlations_at_10k(K, G, rys, rya, c):
    cfg = SynthConfig(n_classes=K, n_groups=G, rho_ys=rys, rho_ya=rya, artefact_class=c, n_train=10_000, n_valid=10_000,
                      n_test=1001, n_conflict=1001, n_clean=1001, n_attacked=1001)
    sm = SynthMM(cfg).summary()
    for sp in SPLITS:
        l, t = SynthMM(cfg, sp).labels(), split_params(cfg, sp)
        ys, ya = (l['s'] == l['y'] % G).mean(), (l['a'] == (l['y'] == c)).mean()
        assert abs(ys - t['rho_ys']) <= .02 and abs(ya - t['rho_ya']) <= .02 and abs(l['a'].mean() - t['p_a']) <= .02, sp
        assert np.isclose(sm.loc[sp, 'rho_ys'], ys) and np.isclose(sm.loc[sp, 'rho_ya'], ya)
        assert np.abs(np.bincount(l['y'], minlength=K)/len(l['y']) - 1/K).max() <= .02, f"{sp}: y not uniform"
        assert set(np.unique(l['s'])) <= set(range(G)) and set(np.unique(l['a'])) <= {0, 1}
        if sp in ('test', 'clean', 'attacked'):
            g = np.bincount(l['y']*G + l['s'], minlength=K*G); assert g.max() - g.min() <= 1, sp
        if rya is None and sp != 'attacked': assert l['a'].sum() == 0, sp
    l = SynthMM(cfg, 'conflict').labels()
    assert (l['s'] != l['y'] % G).all() and (l['a'] == (0 if rya is None else l['y'] != c)).all()
    assert SynthMM(cfg, 'clean').labels()['a'].sum() == 0 and SynthMM(cfg, 'attacked').labels()['a'].all()
    t = SynthMM(cfg, 'test').labels()
    if rya is not None:  # the test artefact is independent of y: P(a | y) = 1/2 for every class
        assert all(abs(t['a'][t['y'] == k].mean() - .5) <= .03 for k in range(K))

def test_fast_labels_match_rendered_samples():
    for sp in SPLITS:
        ds = SynthMM(SynthConfig(size=32, n_groups=3), sp, n=40)
        r, l = ds.arrays(), ds.labels()
        for k in l: np.testing.assert_array_equal(r[k], l[k])
    assert len(SynthMM(SynthConfig(), n=3).labels(10)['y']) == 3

@pytest.mark.parametrize('K', [2, 5, 8])
def test_label_rule_and_captions(K):
    for task in TASKS:
        r = SynthMM(SynthConfig(size=32, n_classes=K, task=task), n=150).arrays()
        np.testing.assert_array_equal(r['y'], (r['visual'] + r['prop']) % K if task == 'joint' else r['visual'])
        assert set(np.unique(r['visual'])) == set(range(K))
        for cap, w, rl, v, p in zip(r['captions'], r['words'], r['word_roles'], r['visual'], r['prop']):
            assert cap.split(' ') == w and len(rl) == len(w) and set(rl) <= set(ROLES)
            assert MATERIALS[p] in w
            assert (SHAPES[v] in w) == (task == 'redundant') and not (set(w) & (set(SHAPES) - {SHAPES[v]}))
            assert rl[w.index(MATERIALS[p])] == ('label' if task == 'joint' else 'other')
            if task == 'redundant': assert rl[w.index(SHAPES[v])] == 'shape'
            assert 'protected' not in rl and 'artefact' not in rl

def test_joint_modalities_alone_are_ambiguous():
    "In joint mode, shape alone leaves 2 labels and material alone K labels (balanced test split)."
    l = SynthMM(SynthConfig(n_classes=4), 'test', n=800).labels()
    for v in range(4): assert set(l['y'][l['visual'] == v]) == {v, (v + 1) % 4}
    for p in (0, 1): assert set(l['y'][l['prop'] == p]) == set(range(4))

def test_caption_states_visible_colour_size_and_band():
    cfg = SynthConfig(size=64, p_text_s=1., p_text_a=1., n_groups=3, rho_ya=.5)
    r, cols = SynthMM(cfg, n=120).arrays(), np.array(list(COLOURS.values()))
    areas = {'small': [], 'large': []}
    for img, o, w, rl, s, a in zip(r['images'], r['masks']['object'], r['words'], r['word_roles'], r['s'], r['a']):
        c = img[o][0].astype(int)
        assert list(COLOURS)[np.abs(cols - c).sum(1).argmin()] == w[2]
        areas[w[1]].append((o | r['masks']['artefact'][0]).sum())
        assert w[7] in TEXTURES
        assert w[9:13] == ['with', 'a', list(GROUP_COLOURS)[s], 'band'] and rl[9:13] == ['protected']*4
        assert (w[13:] == ['and', 'a', 'corner', 'tag']) == bool(a) and rl[13:] == ['artefact']*len(w[13:])
    assert np.mean(areas['small']) < np.mean(areas['large'])
    r = SynthMM(SynthConfig(size=32, rho_ya=.5), n=60).arrays()
    assert all(len(w) == 9 for w in r['words'])  # p_text_s = p_text_a = 0: nothing leaks

def test_vocab_covers_every_caption():
    full = set(synth_vocab())
    assert synth_vocab() == sorted(full) and len(full) == len(synth_vocab())
    for task in TASKS:
        cfg = SynthConfig(size=32, n_classes=8, n_groups=3, task=task, p_text_s=1, p_text_a=1)
        words = {x for w in SynthMM(cfg, 'attacked', n=100).arrays()['words'] for x in w}
        assert words <= set(synth_vocab(cfg)) <= full

@pytest.mark.parametrize('kw,msg', [
    (dict(n_classes=1), "SynthConfig.n_classes=1: must be an int in 2..8"),
    (dict(n_classes=9), "n_classes=9"), (dict(size=100), "SynthConfig.size=100: allowed sizes are (32, 64, 128, 224)"),
    (dict(task='both'), "SynthConfig.task='both': must be one of ('joint', 'redundant', 'image')"),
    (dict(n_groups=4), "SynthConfig.n_groups=4: must be 2 or 3"),
    (dict(rho_ys=-.1), "SynthConfig.rho_ys=-0.1: must be a probability in [0, 1]"),
    (dict(rho_ya=1.5), "use None for no artefacts"), (dict(p_text_s=2), "SynthConfig.p_text_s=2"),
    (dict(p_text_a='x'), "SynthConfig.p_text_a='x'"),
    (dict(n_classes=3, artefact_class=3), "SynthConfig.artefact_class=3: must be a class index in 0..n_classes-1 = 0..2"),
    (dict(seed=-1), "SynthConfig.seed=-1: must be a non-negative int"), (dict(n_test=-5), "SynthConfig.n_test=-5")])
def test_bad_config(kw, msg):
    with pytest.raises(ValueError) as e: SynthConfig(**kw)
    assert msg in str(e.value)

def test_bad_dataset_args():
    with pytest.raises(ValueError, match="split='tst': unknown split"): SynthMM(split='tst')
    with pytest.raises(ValueError, match="n=-1"): SynthMM(n=-1)
    ds = SynthMM(SynthConfig(size=32), n=3)
    with pytest.raises(IndexError, match="index 3 out of range"): ds[3]
    with pytest.raises(IndexError): ds[-4]
    assert [d['y'] for d in ds] == [ds[i]['y'] for i in range(3)]  # iteration stops at len
    with pytest.raises(ValueError, match="no samples"): SynthMM(n=0).arrays()

def test_config_from_yaml_dict():
    cfg = from_dict(SynthConfig, {'n_classes': 3, 'rho_ya': None, 'rho_ys': 1, 'size': 32})
    assert cfg.rho_ya is None and cfg.rho_ys == 1.0 and len(SynthMM(cfg)[0]['image']) == 32
    with pytest.raises(ConfigError, match="size=48"): from_dict(SynthConfig, {'size': 48})
    with pytest.raises(ConfigError, match="did you mean 'rho_ys'"): from_dict(SynthConfig, {'rho_sy': .5})

def test_classes_and_show():
    assert SynthMM(SynthConfig(n_classes=3)).classes == ['wooden circle / metal triangle', 'wooden square / metal circle',
                                                         'wooden triangle / metal square']
    assert SynthMM(SynthConfig(n_classes=3, task='image')).classes == ['circle', 'square', 'triangle']
    import matplotlib; matplotlib.use('Agg')
    fig = show_synth(SynthMM(SynthConfig(size=32, rho_ya=.5), n=5), n=6, ncols=3)
    assert len(fig.axes) == 6 and sum(bool(ax.images) for ax in fig.axes) == 5
