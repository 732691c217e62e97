"Dense edge cases for xaimm_nb.fairness: agreement with fairlearn, hand-computed values, NaN handling, R_bias, bootstrap."
import math, warnings
import numpy as np, pandas as pd, pytest, torch, torch.nn.functional as F
import fairlearn.metrics as flm
from xaimm_nb.fairness import *
from xaimm_nb.metrics import group_accuracy

def rand(seed, n=300, K=2, G=3):
    r = np.random.default_rng(seed)
    return r.integers(0, K, n), r.integers(0, K, n), r.integers(0, G, n)

# ---------- agreement with fairlearn (binary)
@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('G', [2, 3, 5])
def test_binary_matches_fairlearn(seed, G):
    y, p, s = rand(seed, G=G)
    kw = dict(sensitive_features=s)
    assert math.isclose(demographic_parity_difference(p, s), flm.demographic_parity_difference(y, p, **kw), abs_tol=1e-12)
    assert math.isclose(demographic_parity_ratio(p, s), flm.demographic_parity_ratio(y, p, **kw), abs_tol=1e-12)
    for agg in ('worst_case', 'mean'):
        assert math.isclose(equalized_odds_difference(p, y, s, agg=agg), flm.equalized_odds_difference(y, p, agg=agg, **kw), abs_tol=1e-12)

def test_binary_intersectional_and_string_groups():
    y, p, s = rand(7, n=400, G=2)
    s2 = np.random.default_rng(8).integers(0, 2, 400)
    sf = pd.DataFrame(dict(a=s, b=s2))
    st = np.stack([s, s2], 1)
    assert math.isclose(equalized_odds_difference(p, y, st), flm.equalized_odds_difference(y, p, sensitive_features=sf))
    assert math.isclose(demographic_parity_ratio(p, st), flm.demographic_parity_ratio(y, p, sensitive_features=sf))
    names = np.array(['f', 'm'])[s]
    assert math.isclose(demographic_parity_difference(p, names), flm.demographic_parity_difference(y, p, sensitive_features=names))
    assert group_stats(p, y, pd.Series(names, dtype=object))['groups'] == ['f', 'm']
    assert group_stats(p, y, st)['groups'] == [(0, 0), (0, 1), (1, 0), (1, 1)]

def test_scores_tensors_and_labels_agree():
    y, p, s = rand(3, K=4)
    logits = F.one_hot(torch.tensor(p), 4).float() * 3 + torch.randn(len(p), 4) * .1
    a = fairness_report(p, y, s, K=4)
    b = fairness_report(logits, torch.tensor(y), torch.tensor(s))
    assert a == b

# ---------- multi-class, one-vs-rest
@pytest.mark.parametrize('seed', range(4))
def test_multiclass_one_vs_rest_matches_metricframe(seed):
    y, p, s = rand(seed, n=400, K=4, G=3)
    tab = group_table(p, y, s)
    dp, eo = [], []
    for k in range(4):
        yk, pk = (y == k).astype(int), (p == k).astype(int)
        mf = flm.MetricFrame(metrics=dict(sel=flm.selection_rate, tpr=flm.true_positive_rate, fpr=flm.false_positive_rate),
                             y_true=yk, y_pred=pk, sensitive_features=s)
        for m in ('sel', 'tpr', 'fpr'):
            np.testing.assert_allclose(tab[f'{m}_{k}'].iloc[:-1].values, mf.by_group[m].values)
            assert math.isclose(tab.loc['overall', f'{m}_{k}'], mf.overall[m])
        dp.append(flm.demographic_parity_difference(yk, pk, sensitive_features=s))
        eo.append(flm.equalized_odds_difference(yk, pk, sensitive_features=s))
    assert math.isclose(demographic_parity_difference(p, s, K=4), max(dp))
    assert math.isclose(equalized_odds_difference(p, y, s), max(eo))
    assert math.isclose(equalized_odds_difference(p, y, s, pos_label=2), eo[2])
    np.testing.assert_allclose(tab['accuracy'].iloc[:-1].values,
                               flm.MetricFrame(metrics=lambda a, b: (a == b).mean(), y_true=y, y_pred=p, sensitive_features=s).by_group.values)
    assert tab.loc['overall', 'n'] == 400 and tab['n'].iloc[:-1].sum() == 400

def test_binary_table_uses_class_1_and_ratio_convention():
    y, p, s = rand(0)
    tab = group_table(p, y, s)
    assert [c for c in tab.columns if c.startswith('sel')] == ['sel_1']
    assert len(group_table(p, y, s, pos_label=0).filter(like='sel').columns) == 1
    # ratios differ between the two classes; differences do not
    assert math.isclose(demographic_parity_difference(p, s, pos_label=0), demographic_parity_difference(p, s))
    assert not math.isclose(demographic_parity_ratio(p, s, pos_label=0), demographic_parity_ratio(p, s))

# ---------- hand-computed
def test_hand_computed_two_groups():
    p, y, s = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1]
    # g0: sel 2/3, TPR 1/1, FPR 1/2, acc 2/3; g1: sel 1/3, TPR 1/2, FPR 0/1, acc 2/3
    assert math.isclose(demographic_parity_difference(p, s), 1/3)
    assert math.isclose(demographic_parity_ratio(p, s), .5)
    assert math.isclose(equalized_odds_difference(p, y, s), .5)
    assert math.isclose(equalized_odds_difference(p, y, s, agg='mean'), .5)
    assert delta_bias(p, y, s) == 0

def test_delta_bias_matches_group_accuracy():
    y, p, s = rand(5, K=3, G=4)
    acc = group_accuracy(torch.tensor(p), torch.tensor(y), torch.tensor(s))[1]
    assert math.isclose(delta_bias(p, y, s), (acc.max() - acc.min()).item(), rel_tol=1e-6)

# ---------- NaN handling, errors
def test_empty_group_is_nan_and_excluded():
    p, y, s = [1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1]
    with pytest.warns(UserWarning, match=r'groups \[2\] have no samples'):
        tab = group_table(p, y, s, groups=[0, 1, 2])
    assert tab.loc[2, 'n'] == 0 and tab.loc[2, ['accuracy', 'sel_1']].isna().all()
    with pytest.warns(UserWarning):
        assert delta_bias(p, y, s, groups=[0, 1, 2]) == delta_bias(p, y, s)
        assert demographic_parity_difference(p, s, groups=[0, 1, 2]) == 0

def test_undefined_rates_are_excluded_not_zero():
    # group 1 has no y=1 sample, so its TPR is undefined: we leave it out, fairlearn counts it as 0
    p, y, s = [1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]
    with pytest.warns(UserWarning, match=r'TPR: undefined .*\(1, 1\)'):
        assert equalized_odds_difference(p, y, s) == .5                              # FPR 1 vs ½ only
    assert flm.equalized_odds_difference(y, p, sensitive_features=s) == 1            # TPR 1 vs "0"

def test_single_class_split():
    # all labels 0: TPR of class 1 undefined everywhere, FPR defined; EO falls back on FPR gaps
    p, y, s = [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]
    with pytest.warns(UserWarning, match='TPR: undefined'):
        assert equalized_odds_difference(p, y, s) == .5
    with pytest.warns(UserWarning, match='equalised odds: undefined for every class'):
        assert math.isnan(equalized_odds_difference(p, y, s, agg='mean'))
    assert demographic_parity_difference(p, s) == .5

def test_one_group_and_no_selection_give_nan():
    with pytest.warns(UserWarning, match='need 2 groups'):
        assert math.isnan(demographic_parity_difference([0, 1], [3, 3]))
    with pytest.warns(UserWarning, match='undefined for every class'):
        assert math.isnan(demographic_parity_ratio([0, 0, 0, 0], [0, 0, 1, 1], K=2))  # nobody selected: 0/0

@pytest.mark.parametrize('call, msg', [
    (lambda: delta_bias([0, 1], [0, 1], None), 's: missing'),
    (lambda: group_stats([0, 1, 1], [0, 1], [0, 1]), 'of one length N'),
    (lambda: group_stats([0, 5], [0, 1], [0, 1], K=3), 'labels must lie in 0..2'),
    (lambda: group_stats([], [], []), 'y: no samples'),
    (lambda: demographic_parity_difference([0, 1], [0, 1], pos_label=4), 'pos_label=4'),
    (lambda: group_stats([0, 1], [0, 1], [0, 9], groups=[0, 1]), 'not in groups'),
    (lambda: r_bias(torch.rand(3, 2), torch.zeros(3), None), 's: the protected attribute is missing'),
    (lambda: r_bias(torch.rand(3, 2), torch.zeros(2), torch.zeros(3)), 'need probs [N,K]'),
])
def test_errors(call, msg):
    with pytest.raises(ValueError, match=None) as e: call()
    assert msg in str(e.value)

# ---------- R_bias
def test_r_bias_brute_force_and_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y, s = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 4, (50,), generator=g)
    q = logits.softmax(1)
    ref = sum(((q[s == k].mean(0) - F.one_hot(y[s == k], 3).double().mean(0))**2).sum() for k in s.unique())
    assert torch.allclose(r_bias(q, y, s), ref)
    assert torch.autograd.gradcheck(lambda l: r_bias(l.softmax(1), y, s), (logits,))

def test_r_bias_zero_when_group_means_match():
    # predictions wrong per sample but each group's mean matches its label distribution
    y, s = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    q = F.one_hot(torch.tensor([1, 0, 1, 0]), 2).float()
    assert r_bias(q, y, s) == 0

# ---------- bootstrap, plot
def test_bootstrap_seeded_and_covers():
    y, p, s = rand(2, n=200)
    a = bootstrap_ci(equalized_odds_difference, p, y, s, n_boot=200, seed=1)
    assert a == bootstrap_ci(equalized_odds_difference, p, y, s, n_boot=200, seed=1)
    assert a != bootstrap_ci(equalized_odds_difference, p, y, s, n_boot=200, seed=2)
    wide = bootstrap_ci(equalized_odds_difference, p, y, s, n_boot=200, ci=.99, seed=1)
    assert wide[0] <= a[0] <= equalized_odds_difference(p, y, s) <= a[1] <= wide[1]

def test_bootstrap_keeps_group_sizes_and_reports_nan():
    seen = []
    def fn(p, y, s): seen.append(np.bincount(s, minlength=2).tolist()); return float('nan') if len(seen) % 2 else 1.
    with pytest.warns(UserWarning, match='10 of 20 replicates are NaN'):
        assert bootstrap_ci(fn, [0]*5 + [1]*3, [0]*8, [0]*5 + [1]*3, n_boot=20) == (1., 1.)
    assert all(c == [5, 3] for c in seen)

def test_report_ci_and_plot():
    y, p, s = rand(4, K=3)
    r = fairness_report(p, y, s, n_boot=50)
    assert {'accuracy', 'macro_f1', 'worst_group_acc', 'dp_diff', 'dp_ratio', 'eo_diff', 'delta_bias', 'delta_bias_ci'} <= set(r)
    assert r['worst_group_acc'] <= r['accuracy']
    ax = plot_groups(group_table(p, y, s), ('accuracy', 'tpr_0'))
    assert len(ax.patches) == 2 * 3 and len(ax.lines) == 2
