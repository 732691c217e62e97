"Checks of xaimm_nb.explain.benchmark beyond the notebook: table rows and ranges, artefacts, resume without retraining, errors."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import json, math
import pandas as pd, pytest, torch
import xaimm_nb.explain.benchmark as bm
from xaimm_nb.core import ConfigError, RunDir, from_dict, load_state
from xaimm_nb.models.dual import DualConfig
from xaimm_nb.explain.benchmark import DualBenchConfig, dual_benchmark, paper_tables

torch.set_num_threads(1)

METHODS = {'m2ib': dict(steps=2, n_samples=2), 'chefer': {}, 'rollout': {}, 'dsmi': {}, 'dsmi_grad': {}, 'dsmi_grad_attn': {}}
BOUNDS = dict(pointing=(0, 1), iou=(0, 1), conf_increase=(0, 100), conf_drop=(0, 200), auc_pos=(-1, 1), auc_neg=(-1, 1))


def small(**kw):
    return DualBenchConfig(**{**dict(dual=DualConfig(n_train=64, depth=2, epochs=1, bs=32), n=6, bs=4, n_recall=32, n_candidates=16,
                                     n_show=2, methods=METHODS, device='cpu'), **kw})


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp('dual')
    return d, dual_benchmark(small(), d)


def test_every_method_and_random(run):
    _, r = run
    t = pd.DataFrame.from_dict(r['table'], orient='index')
    assert list(t.index) == [*METHODS, 'random']
    for m in ('image', 'text'):
        assert {f'{m}/{k}' for k in BOUNDS} <= set(t.columns)
    assert t.loc['random', 's/sample'] == 0 and (t.drop('random')['s/sample'] > 0).all()


def test_values_in_range(run):
    _, r = run
    for meth, row in r['table'].items():
        for k, v in row.items():
            if k == 's/sample': continue
            lo, hi = BOUNDS[k.split('/')[1]]
            assert lo <= v <= hi, (meth, k, v)
    assert 0 <= r['recall']['i2t'] <= 1 and r['recall']['n_queries'] == 32 and r['recall']['n_candidates'] == 16
    assert math.isfinite(r['final_loss']) and r['n'] == 6


def test_json_ready_and_timing_keys(run):
    _, r = run
    json.dumps(r, allow_nan=True)
    timing = {k for k in r if 'seconds' in k}
    assert timing == {'train_seconds', 'explain_seconds'}
    assert all(k == 's/sample' or k.split('/')[0] in ('image', 'text') for row in r['table'].values() for k in row)


def test_artefacts(run):
    d, r = run
    for f in ('models/dual.pt', 'results/dual_xai_table.csv', 'results/dual_xai.json',
              'visualizations/dual_xai_table.png', 'visualizations/dual_explanations.png'):
        assert (d/f).stat().st_size > 0, f
    js = json.loads((d/'results'/'dual_xai.json').read_text())
    assert set(js['metrics']) == {*METHODS, 'random'} and js['n'] == 6 and js['recall'] == r['recall']
    s = js['metrics']['chefer']['image/auc_pos']
    # exact: the table's mean and the JSON summary are both `summarize`'s float64 mean of the same per-sample tensor
    # (until issue 17 the table took a float32 np.nanmean, 1-2 float32 ulps off, by CPU kernel)
    assert s['n'] == 6 and s['std'] >= 0 and s['mean'] == r['table']['chefer']['image/auc_pos']
    csv = pd.read_csv(d/'results'/'dual_xai_table.csv', index_col=0)
    assert list(csv.index) == [*METHODS, 'random']
    st = load_state(d/'models'/'dual.pt')
    assert st['config']['depth'] == 2 and len(st['hist']) == 1 and 'model' in st


def test_resume_does_not_retrain(run, monkeypatch):
    d, r = run
    mt = (d/'models'/'dual.pt').stat().st_mtime_ns
    def boom(*a, **k): raise AssertionError('train_dual called although models/dual.pt exists')
    monkeypatch.setattr(bm, 'train_dual', boom)
    r2 = dual_benchmark(small(), RunDir(d))  # a RunDir works as well as a path
    assert (d/'models'/'dual.pt').stat().st_mtime_ns == mt
    assert r2['recall'] == r['recall'] and r2['train_seconds'] == r['train_seconds']
    a, b = (pd.DataFrame(x['table']).drop('s/sample') for x in (r, r2))
    pd.testing.assert_frame_equal(a, b, atol=1e-6)


def test_no_run_dir_trains_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = dual_benchmark(small(methods={'chefer': {}}, n=2))
    assert list(r['table']) == ['chefer', 'random'] and not list(tmp_path.iterdir())


def test_checkpoint_of_other_settings_is_refused(run):
    d, _ = run
    with pytest.raises(ValueError, match=r"depth=2.*depth=3.*delete"):
        dual_benchmark(small(dual=DualConfig(n_train=64, depth=3, epochs=1, bs=32)), d)


def test_bad_method_name():
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['m2ibb'\]; available: .*m2ib"):
        DualBenchConfig(methods=['m2ibb', 'chefer'])
    with pytest.raises(ConfigError, match="unknown method"):
        from_dict(DualBenchConfig, {'methods': {'nope': {}}})


def test_bad_method_option_is_named(tmp_path):
    with pytest.raises(TypeError, match="'m2ib' has no option 'step'"):
        dual_benchmark(small(methods={'m2ib': {'step': 3}}, n=2), tmp_path)


def test_config_checks():
    with pytest.raises(ValueError, match="n=0"): DualBenchConfig(n=0)
    with pytest.raises(ValueError, match="n_recall=10 is smaller than n_candidates=100"): DualBenchConfig(n_recall=10)
    c = from_dict(DualBenchConfig, {'dual': {'depth': 2}, 'methods': ['chefer'], 'n': 8})
    assert c.dual.depth == 2 and c.methods == {'chefer': {}} and c.n == 8


def test_paper_tables_layout(run):
    _, r = run
    t = paper_tables(r['table'])
    assert set(t) == {'m2ib', 'perturbation', 'localisation'}
    assert list(t['perturbation'].columns) == ['image + ↓', 'image − ↑', 'text + ↓', 'text − ↑']
    assert t['perturbation'].loc['chefer', 'image + ↓'] == pytest.approx(100 * r['table']['chefer']['image/auc_pos'])
    assert t['m2ib'].loc['random', 'txt incr↑'] == r['table']['random']['text/conf_increase']
    assert list(t['localisation'].index) == [*METHODS, 'random']
