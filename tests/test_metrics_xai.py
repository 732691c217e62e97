"Edge cases of the honest xai table (issue 19): bootstrap intervals, the uninformative flag, ranks, the run headline."
import json, math
import numpy as np, pandas as pd, pytest, torch
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from xaimm_nb.metrics import summarize
from xaimm_nb.metrics.xai import (FAMILIES, xai_ci, uninformative, xai_rank, best_per_family, xai_report,
                                  plot_xai_table, score_columns)
from xaimm_nb.pipeline import summary, summary_markdown


def table(per):
    "The means `xai_table` would return for these per-sample scores."
    return pd.DataFrame({m: summarize(p)['mean'] for m, p in per.items()}).T


def with_ci(per, **kw): return xai_ci(table(per), per, **kw)


def body_rows(md):
    t = [l for l in md.splitlines() if l.startswith('|')]
    return len(t) - 2 * sum(l.startswith('| ---') for l in t)


def hits(p, n=40, seed=0): return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < p).float()


# ---------- xai_ci

def test_interval_is_the_percentile_bootstrap_of_the_mean():
    v = torch.arange(10.)
    t = with_ci({'a': {'image/iou': v}}, n_boot=2000, seed=3)
    rng = np.random.default_rng(3)
    means = v.double().numpy()[rng.integers(0, 10, (2000, 10))].mean(1)
    assert t.loc['a', 'image/iou_lo'] == pytest.approx(np.quantile(means, .025))
    assert t.loc['a', 'image/iou_hi'] == pytest.approx(np.quantile(means, .975))
    assert t.loc['a', 'image/iou_lo'] < 4.5 < t.loc['a', 'image/iou_hi']
    assert list(t.columns) == ['image/iou', 'image/iou_lo', 'image/iou_hi']


def test_seeded_level_and_paired_draws():
    v = torch.rand(30, generator=torch.Generator().manual_seed(1))
    per = {'a': {'image/iou': v}, 'b': {'image/iou': v.clone()}}
    t = with_ci(per)
    pd.testing.assert_frame_equal(t, with_ci(per))  # the same seed: the same intervals
    assert t.loc['a', 'image/iou_lo'] == t.loc['b', 'image/iou_lo']  # the same draws for every method of a column
    assert with_ci(per, seed=1).loc['a', 'image/iou_lo'] != t.loc['a', 'image/iou_lo']
    w = lambda x: x.loc['a', 'image/iou_hi'] - x.loc['a', 'image/iou_lo']
    assert w(with_ci(per, level=.5)) < w(t)


def test_nan_samples_skipped_and_missing_columns_nan():
    per = {'img': {'image/iou': torch.tensor([1., float('nan'), 1.])},
           'both': {'image/iou': torch.tensor([0., 0., 0.]), 'text/iou': torch.tensor([float('nan')] * 3)}}
    t = with_ci(per)
    assert (t.loc['img', 'image/iou_lo'], t.loc['img', 'image/iou_hi']) == (1., 1.)  # one value left: a point
    assert t.loc['img', ['text/iou', 'text/iou_lo', 'text/iou_hi']].isna().all()  # no such scores
    assert t.loc['both', ['text/iou_lo', 'text/iou_hi']].isna().all()  # all NaN


def test_timing_column_kept_without_interval():
    per = {'a': {'image/iou': torch.ones(4)}}
    tab = table(per).assign(**{'s/sample': .5})
    t = xai_ci(tab, per)
    assert 's/sample' in t and 's/sample_lo' not in t and score_columns(t) == ['image/iou']


# ---------- uninformative

def test_saturated_column_flagged_informative_kept():
    per = {m: {'image/pointing': hits(p, seed=i), 'text/auc_pos': torch.full((40,), .999)}
           for i, (m, p) in enumerate(dict(gradcam=.9, saliency=.7, random=.2).items())}
    assert uninformative(with_ci(per)) == ['text/auc_pos']


def test_random_like_the_best_method_is_flagged():
    "Image pointing on large objects: random maps hit 0.8, the best method 0.85 - inside its interval."
    per = {'gradcam': {'image/pointing': hits(.85, seed=1)}, 'random': {'image/pointing': hits(.8, seed=2)}}
    t = with_ci(per)
    lo, hi = t.loc['gradcam', ['image/pointing_lo', 'image/pointing_hi']]
    assert lo <= t.loc['random', 'image/pointing'] <= hi
    assert uninformative(t) == ['image/pointing']


def test_direction_decides_the_best_method():
    "auc_pos: lower is better - the best method is the lowest; random above its interval is not flagged."
    per = {'good': {'image/auc_pos': torch.full((20,), .2) + .01 * torch.randn(20)},
           'bad': {'image/auc_pos': torch.full((20,), .5) + .01 * torch.randn(20)},
           'random': {'image/auc_pos': torch.full((20,), .5) + .01 * torch.randn(20)}}
    assert uninformative(with_ci(per)) == []
    per['random'] = {'image/auc_pos': per['good']['image/auc_pos'].clone()}  # random as good as the best
    assert uninformative(with_ci(per)) == ['image/auc_pos']


def test_random_better_than_every_method_is_not_flagged():
    per = {'a': {'image/iou': torch.zeros(20)}, 'random': {'image/iou': torch.full((20,), .3)}}
    assert uninformative(with_ci(per)) == []


def test_no_random_row_or_no_intervals_nothing_flagged():
    per = {'a': {'image/iou': torch.ones(5)}, 'random': {'image/iou': torch.ones(5)}}
    assert uninformative(with_ci(per)) == ['image/iou']
    assert uninformative(with_ci(per).drop('random')) == []
    assert uninformative(table(per)) == []  # means only: no interval to compare with


# ---------- ranks, families, report

def test_rank_and_best_per_family():
    tab = pd.DataFrame({'image/pointing': [.9, .5, .7, .6, .95, .1], 'image/auc_pos': [.2, .3, .25, .4, .5, .3]},
                       index=['gradcampp', 'gradcam', 'ig', 'saliency', 'mystery', 'random'])
    r = xai_rank(tab)
    assert r.index[0] == 'gradcampp' and 'random' not in r  # best pointing and best (lowest) auc_pos
    assert best_per_family(tab) == {'CAM': 'gradcampp', 'gradient': 'ig', 'other': 'mystery'}
    assert best_per_family(tab, skip=['image/auc_pos'])['CAM'] == 'gradcampp'
    assert xai_rank(tab, ['image/auc_pos']).index[0] == 'mystery'  # pointing alone
    assert xai_rank(tab.to_dict('index')).equals(r)  # the dict the pipeline saves ranks the same
    assert set(FAMILIES['perturbation']) == {'lime', 'scorecam'} and 'chefer' in FAMILIES['attention']


def test_report_is_json_ready_without_nan():
    per = {'img': {'image/iou': torch.ones(4)}, 'both': {'image/iou': torch.zeros(4), 'text/iou': torch.ones(4)},
           'random': {'image/iou': torch.ones(4), 'text/iou': torch.zeros(4)}}
    rep = xai_report(with_ci(per))
    assert set(rep) == {'table', 'ci', 'uninformative'} and rep['uninformative'] == ['image/iou']
    assert rep['table']['img'] == {'image/iou': 1.} and rep['ci']['img'] == {'image/iou': [1., 1.]}
    assert rep['ci']['both']['text/iou'] == [1., 1.]
    json.loads(json.dumps(rep, allow_nan=False))


# ---------- the picture

def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts + ax.get_xticklabels()] + [fig.axes[0].get_xlabel()]


def test_plot_shows_intervals_and_marks_flagged_columns():
    per = {m: {'image/pointing': hits(p, seed=i), 'text/auc_pos': torch.full((40,), .999)}
           for i, (m, p) in enumerate(dict(gradcam=.9, random=.2).items())}
    fig = plot_xai_table(with_ci(per), 't')
    tx = _texts(fig)
    assert any(t.startswith('0.9') and '\n[' in t for t in tx)  # mean over its interval
    assert any('auc_pos' in t and '≈ random' in t for t in tx)
    assert not any('pointing' in t and '≈ random' in t for t in tx)
    plt.close(fig)
    fig = plot_xai_table(table(per), 't')  # means only: as before, no intervals, no flags
    assert not any('[' in t or '≈' in t for t in _texts(fig))
    plt.close(fig)


# ---------- the run's headline (pipeline.summary_markdown)

def _metrics(per, methods_dual=('m2ib', 'chefer', 'dsmi')):
    rep = xai_report(with_ci(per))
    dper = {m: {'image/iou': hits(.3 + .1 * i, seed=10 + i)} for i, m in enumerate([*methods_dual, 'random'])}
    clf = dict(accuracy=.91, macro_f1=.9, delta_bias=.04, worst_group_acc=.82)
    return dict(classifier=dict(test=clf, conflict=clf, valid=clf), explain=dict(n=40, split='test', **rep, skipped={}),
                dual=dict(n=40, recall=dict(i2t=.5, t2i=.4, n_queries=100, n_candidates=10),
                          **xai_report(with_ci(dper))),
                gan=dict(fid_data=3.1, kid_data=.01, conditional_accuracy=.6, fairness_discrepancy=.02, diversity=.9),
                r2r=dict(base=dict(clean_acc=.9, conflict_acc=.5, delta_bias=.3),
                         methods={m: dict(after=dict(clean_acc=.9, conflict_acc=a, delta_bias=.2)) for m, a in
                                  (('pclarc', .6), ('rrclarc', .7), ('rrr', .65))}))


def test_headline_at_most_20_rows_with_every_family():
    per = {m: {'image/pointing': hits(.1 if m == 'random' else .5 + .03 * i, seed=i),
               'text/auc_pos': torch.full((40,), .999)}
           for i, m in enumerate([*sum(FAMILIES.values(), ()), 'mystery', 'random'])}
    m = _metrics(per)
    md = summary_markdown(m)
    assert body_rows(md) <= 20  # 4 classifier + 6 families + other + random + 2 dual + 1 GAN + 2 r2r = 17
    assert len(summary(m)) > 60 and body_rows(summary_markdown(m, full=True)) == len(summary(m))
    for fam in [*FAMILIES, 'other']: assert f'| {fam} |' in md, fam
    assert '| baseline | random |' in md and 'rrclarc (best of 3)' in md and '| before |' in md
    assert 'fid_data' in md and 'diversity' not in md  # the GAN's headline numbers only
    assert 'recall@1 0.500 image→text' in md and 'best of 3' in md


def test_headline_flags_the_column_where_random_equals_the_methods():
    per = {m: {'image/pointing': hits(p, seed=i), 'text/auc_pos': torch.full((40,), .999)}
           for i, (m, p) in enumerate(dict(gradcampp=.9, chefer=.8, random=.2).items())}
    m = _metrics(per)
    md = summary_markdown(m)
    assert m['explain']['uninformative'] == ['text/auc_pos']
    sec = md.split('## Explanations')[1].split('## ')[0]
    assert 'image/pointing ↑' in sec and 'text/auc_pos' not in sec.splitlines()[2]  # flagged: not a column
    assert "interval): text/auc_pos." in sec  # but named under the table
    full = summary_markdown(m, full=True)
    assert '| xai/random/text/auc_pos | 0.9990 | [0.9990, 0.9990] | ≈ random |' in full
    row = next(l for l in full.splitlines() if l.startswith('| xai/gradcampp/image/pointing |'))
    assert '≈ random' not in row and row.count('[') == 1


def test_headline_of_a_run_without_intervals_and_with_few_stages():
    "metrics.json of a run from before intervals (no `ci`), and a run with the classifier alone."
    per = {'gradcam': {'image/iou': hits(.9)}, 'random': {'image/iou': hits(.1)}}
    m = _metrics(per)
    for k in ('ci', 'uninformative'): del m['explain'][k]
    md = summary_markdown(m)
    assert 'no intervals' in md and '| CAM | gradcam | 0.900 |' in md and '| baseline | random | 0.100 |' in md
    assert 'No column tells a method from random maps' in md.split('## Dual')[1]  # its one column is flagged: no table
    only = summary_markdown({'classifier': {'test': {'accuracy': .5}}})
    assert body_rows(only) == 1 and '## Explanations' not in only
