"Papermill runs, ablations (failure isolation, resume), the results table and Optuna sweeps on the smoke config."
import json, re, sys
from pathlib import Path
import pandas as pd, pytest
from xaimm_nb.core import ConfigError, load_json
from xaimm_nb.experiments import (ABLATIONS, experiment_config, flat_metrics, template_path, run_experiment, run_ablations,
                                  collect_runs, summarise, plot_ablations, load_space, sweep)

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT/'configs'/'tiny.yaml')
SMALL = ['data.n_train=64', 'data.n_valid=32', 'data.n_test=32', 'data.n_conflict=32']


@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "Two ablations × two seeds of the classifier template; image_only/seed1 is made to fail by a corrupt run directory."
    out = tmp_path_factory.mktemp('abl')
    bad = out/'image_only'/'seed1'/'results'/'stages.json'
    bad.parent.mkdir(parents=True); bad.write_text('{not json')
    logs = []
    df = run_ablations(TINY, seeds=(0, 1), ablations=['full', 'image_only'], out=out, overrides=SMALL, stages=('classifier',),
                       progress=False, log=logs.append)
    return out, df, logs


def test_ablations_run_and_isolate_failures(study):
    out, df, logs = study
    assert list(zip(df.ablation, df.seed, df.status)) == [('full', 0, 'done'), ('full', 1, 'done'), ('image_only', 0, 'done'), ('image_only', 1, 'failed')]
    err = df.error.iloc[3]
    assert 'stages.json' in err and 'not valid JSON' in err
    assert len(logs) == 1 and logs[0].startswith('image_only seed 1: FAILED (ValueError: ')
    for a, s in [('full', 0), ('full', 1), ('image_only', 0), ('image_only', 1)]:
        assert (out/a/f'seed{s}'/'classifier.ipynb').exists()  # papermill keeps the executed notebook of a failed run too
    for a, s in [('full', 0), ('full', 1), ('image_only', 0)]:
        m = load_json(out/a/f'seed{s}'/'results'/'metrics.json')
        assert 0 <= m['classifier']['test']['accuracy'] <= 1
        assert load_json(out/a/f'seed{s}'/'status.json')['params']['seed'] == s
    cfg = (out/'image_only'/'seed0'/'config.yaml').read_text()
    assert 'mode: image' in cfg and 'seed: 0' in cfg and 'n_train: 64' in cfg and 'stages:\n- classifier\n' in cfg
    assert df.acc.notna().sum() == 3 and df.seconds.gt(0).all()


def test_rerun_skips_done(study):
    out, _, _ = study
    nbs = {p: p.stat().st_mtime_ns for p in out.rglob('classifier.ipynb')}
    logs = []
    df = run_ablations(TINY, seeds=(0,), ablations=['full', 'image_only'], out=out, overrides=SMALL, stages=('classifier',),
                       progress=False, log=logs.append)
    assert logs == ['full seed 0: done already - skipped', 'image_only seed 0: done already - skipped']
    assert all(p.stat().st_mtime_ns == t for p, t in nbs.items())  # nothing executed again
    assert len(df) == 4  # the table still lists every run of the folder
    s = summarise(df, ['acc', 'delta_bias'])
    assert list(s.index) == ['full', 'image_only'] and list(s.n) == [2, 1] and list(s.failed) == [0, 1]
    assert re.fullmatch(r'\d\.\d{3} ± \d\.\d{3}', s.loc['full', 'acc']) and re.fullmatch(r'\d\.\d{3}', s.loc['image_only', 'acc'])
    full = df[df.ablation == 'full'].acc
    assert s.loc['full', 'acc'] == f'{full.mean():.3f} ± {full.std():.3f}'
    assert len(plot_ablations(df).axes) == 2
    with pytest.raises(ValueError, match=r"full/seed0 was finished with .*'overrides': \['data.n_train=64'.*one `out` folder holds one study"):
        run_ablations(TINY, seeds=(0,), ablations=['full'], out=out, progress=False)  # other settings, same folder


def test_summarise_formats_and_counts():
    runs = pd.DataFrame({'ablation': ['a', 'a', 'a', 'b', 'c'], 'seed': [0, 1, 2, 0, 0], 'status': ['done', 'done', 'done', 'done', 'failed'],
                         'acc': [.9, .8, .7, .5, None]})
    s = summarise(runs)
    assert s.loc['a', 'acc'] == '0.800 ± 0.100' and s.loc['b', 'acc'] == '0.500' and s.loc['c', 'acc'] == ''
    assert list(s.n) == [3, 1, 0] and list(s.failed) == [0, 0, 1]
    with pytest.raises(KeyError, match=r"metrics \['f1'\] are not in the runs' results"): summarise(runs, ['f1'])
    with pytest.raises(KeyError, match="by='model'"): summarise(runs, by='model')


def test_experiment_config_and_flat_metrics():
    d = experiment_config(TINY, ['stages=[synth, classifier, explain]', 'stages-=explain', 'stages-=synth', 'train.lam_bias=0.5'], seed=7)
    assert d['stages'] == ['classifier'] and d['train']['lam_bias'] == .5 and d['seed'] == 7
    base = {'stages': ['synth']}
    assert experiment_config(base, ['stages-=synth']) == {'stages': []} and base == {'stages': ['synth']}  # the input is not modified
    with pytest.raises(ConfigError, match="'model.preset' is 'tiny', not a list"): experiment_config(TINY, ['model.preset-=tiny'])
    with pytest.raises(ConfigError, match=r"tiny.yaml: override 'train' must look like key.sub=value"): experiment_config(TINY, ['train'])
    assert set(ABLATIONS) == {'full', 'image_only', 'text_only', 'no_fusion', 'no_xai', 'no_bias_feedback'}
    m = flat_metrics({'classifier': {'test': {'accuracy': .5, 'delta_bias': .1, 'ok': True}, 'valid': {'accuracy': .6}}, 'gan': {'fid_synthmm': 3.}, 'h': [1, 2]})
    assert m == {'classifier.test.accuracy': .5, 'classifier.test.delta_bias': .1, 'classifier.valid.accuracy': .6, 'gan.fid_synthmm': 3.,
                 'acc': .5, 'delta_bias': .1, 'valid_acc': .6, 'fid': 3.}


def test_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"template 'clasifier': no such notebook.*'classifier'"): template_path('clasifier')
    with pytest.raises(ValueError, match=r"ablations: unknown \['no_fuson'\]"): run_ablations(TINY, ablations=['no_fuson'], out=tmp_path)
    with pytest.raises(FileNotFoundError, match="config 'nope.yaml': no such file"): run_ablations('nope.yaml', out=tmp_path)
    with pytest.raises(ValueError, match=r"stages=\['trian'\]: the config runs \['synth', 'classifier'"): run_ablations(TINY, out=tmp_path, stages=['trian'])
    with pytest.raises(FileNotFoundError, match='no such folder of runs'): collect_runs(tmp_path/'missing')
    assert collect_runs(tmp_path).empty


PROBE = """import sys, json, pathlib
out = pathlib.Path(out_dir)
(out/'exe.txt').write_text(sys.executable)
assert not (out/'FAIL').exists(), 'asked to fail'
(out/'results').mkdir(parents=True, exist_ok=True)
(out/'results'/'metrics.json').write_text(json.dumps({'classifier': {'test': {'accuracy': 0.5 + seed/10}}}))"""

def test_mechanics_with_a_probe_template(tmp_path, monkeypatch):
    "Kernel choice, failure isolation, retry and skip with a template that needs no torch (a second per run)."
    spec = tmp_path/'jupyter'/'kernels'/'python3'
    spec.mkdir(parents=True)  # a `python3` kernelspec pointing elsewhere must not be used
    (spec/'kernel.json').write_text(json.dumps({'argv': ['/nonexistent/python', '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                               'display_name': 'elsewhere', 'language': 'python'}))
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path/'jupyter'))
    cell = lambda src, tags=(): {'cell_type': 'code', 'id': f'c{len(src)}', 'metadata': {'tags': list(tags)}, 'execution_count': None, 'outputs': [], 'source': src}
    nb = {'cells': [cell("config = ''\noverrides = []\nseed = 0\nout_dir = ''", ['parameters']), cell(PROBE)],
          'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path/'probe.ipynb').write_text(json.dumps(nb))
    out = tmp_path/'runs'
    (out/'b'/'seed1').mkdir(parents=True); (out/'b'/'seed1'/'FAIL').touch()
    kw = dict(seeds=(0, 1), ablations={'a': [], 'b': ['x=1']}, out=out, template=tmp_path/'probe.ipynb', progress=False)
    logs = []; df = run_ablations(TINY, **kw, log=logs.append)
    assert list(df.status) == ['done', 'done', 'done', 'failed'] and df.error.iloc[3] == 'AssertionError: asked to fail'
    assert logs == [f"b seed 1: FAILED (AssertionError: asked to fail); details in {out/'b'/'seed1'/'status.json'}"]
    assert {p.read_text() for p in out.rglob('exe.txt')} == {sys.executable}
    st = load_json(out/'b'/'seed1'/'status.json')
    assert (st['ablation'], st['seed'], st['template'], st['params']['overrides']) == ('b', 1, 'probe', ['stages=[synth, classifier, explain]', 'x=1'])
    nbs = {p: p.stat().st_mtime_ns for p in out.rglob('probe.ipynb')}
    (out/'b'/'seed1'/'FAIL').unlink()
    logs = []; df = run_ablations(TINY, **kw, log=logs.append)
    assert list(df.status) == ['done'] * 4 and len(logs) == 3  # three skipped, the failed one retried
    assert [p.parent.relative_to(out).parts for p, t in nbs.items() if p.stat().st_mtime_ns != t] == [('b', 'seed1')]
    assert summarise(df).loc['a', 'acc'] == '0.550 ± 0.071'
    assert run_experiment(tmp_path/'probe.ipynb', {'seed': 2}, tmp_path/'one') == {'classifier.test.accuracy': .7, 'acc': .7}


def test_sweep_sqlite(tmp_path):
    import optuna
    db = f'sqlite:///{tmp_path}/sweep.db'
    st = sweep(TINY, ROOT/'configs'/'sweep_tiny.yaml', n_trials=2, storage=db, out=tmp_path/'trials', overrides=SMALL, progress=False)
    assert st.study_name == 'tiny-sweep_tiny' and (tmp_path/'sweep.db').exists()
    s = optuna.load_study(study_name='tiny-sweep_tiny', storage=db)  # what another process sees
    done = [t for t in s.trials if t.state.name == 'COMPLETE']
    assert len(done) == 2 and [d.name for d in s.directions] == ['MAXIMIZE', 'MINIMIZE']
    for t in done:
        m = flat_metrics(load_json(Path(t.user_attrs['run_dir'])/'results'/'metrics.json'))
        assert t.values == [m['valid_acc'], m['valid_delta_bias']]
        assert 1e-4 <= t.params['train.lr'] <= 1e-2 and t.params['model.fusion'] in ('cross', 'concat')
    cfg = (tmp_path/'trials'/'tiny-sweep_tiny'/'trial_0000'/'config.yaml').read_text()
    assert f"fusion: {done[0].params['model.fusion']}" in cfg
    assert len(sweep(TINY, ROOT/'configs'/'sweep_tiny.yaml', n_trials=2, storage=db, out=tmp_path/'trials', progress=False).trials) == 2  # complete: nothing runs
    with pytest.raises(ConfigError, match=r"optimises \['maximize', 'minimize'\], this space \['minimize'\]; pass another study_name"):
        sweep(TINY, {'objectives': {'delta_bias': 'min'}, 'params': {'train.lr': {'type': 'float', 'low': 1e-3, 'high': 1e-2}}},
              storage=db, study_name='tiny-sweep_tiny', out=tmp_path/'trials')


def test_sweep_errors(tmp_path):
    sp = {'objectives': {'acc': 'max'}, 'params': {'model.fusion': {'type': 'categorical', 'choices': ['crosss']}}}
    with pytest.raises(RuntimeError, match=r"all 2 new trials failed; first error: .*model.fusion='crosss'"):
        sweep(TINY, sp, n_trials=2, storage=f'sqlite:///{tmp_path}/s.db', out=tmp_path/'t', progress=False)
    with pytest.raises(ConfigError, match=r"params.train.lr: unknown key\(s\) \['hi'\]"):
        load_space({'objectives': {'acc': 'max'}, 'params': {'train.lr': {'type': 'float', 'low': 0, 'hi': 1}}})
    with pytest.raises(ConfigError, match='objectives: give a mapping'): load_space({'params': {}})
    with pytest.raises(ConfigError, match=r"unknown sweep key\(s\) \['objective'\]"): load_space({'objective': {'acc': 'max'}})
    sp = load_space(ROOT/'configs'/'sweep_tiny.yaml')
    assert sp['objectives'] == {'valid_acc': 'maximize', 'valid_delta_bias': 'minimize'} and sp['params']['train.lr']['log'] is True
    assert sp['stages'] == ['classifier']
    with pytest.raises(ConfigError, match="stages: 'classifier'; give a list"): load_space({'objectives': {'acc': 'max'}, 'params': {'x': {'type': 'int', 'low': 0, 'high': 1}}, 'stages': 'classifier'})


def test_fid_short_name_on_your_data():
    "The ablation tables' `fid` column reads FID on SynthMM's features or, on your own data, on the data's."
    from xaimm_nb.experiments import flat_metrics
    assert flat_metrics({'gan': {'fid_data': 3.0}})['fid'] == 3.0
    assert flat_metrics({'gan': {'fid_synthmm': 2.0}})['fid'] == 2.0
    assert 'fid' not in flat_metrics({'gan': {}})
