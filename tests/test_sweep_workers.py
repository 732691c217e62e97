"""Two `xaimm sweep` workers started together on one Optuna study in one SQLite file: distinct trials, both used.

Workers that start together see the same (empty) study; seeded alike, their samplers would draw the same configs.
`--worker N` offsets each worker's sampler seed, so their trials differ."""
import os, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg',
           TOKENIZERS_PARALLELISM='false', XAIMM_PROGRESS='0')
SMALL = ['data.n_train=64', 'data.n_valid=32', 'data.n_test=32', 'data.n_conflict=32']

def test_two_workers_share_one_study(tmp_path):
    optuna = pytest.importorskip('optuna')
    url = f"sqlite:///{tmp_path/'study.db'}"
    cmd = lambda w: [str(BIN/'xaimm'), 'sweep', '--config', 'tiny', '--space', 'sweep_tiny', '--trials', '4',
                     '--storage', url, '--study', 'shared', '--out', str(tmp_path/'runs'), '--worker', str(w),
                     '--set', *SMALL]
    ps = [subprocess.Popen(cmd(w), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for w in (0, 1)]
    try: outs = [p.communicate(timeout=240)[0] for p in ps]
    finally:
        for p in ps:
            if p.poll() is None: p.kill(); p.wait()
    for p, o in zip(ps, outs): assert p.returncode == 0, o[-3000:]
    st = optuna.load_study(study_name='shared', storage=url)
    done = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4, [t.state for t in st.trials]          # the total over both workers (a 5th may finish)
    params = [tuple(sorted(t.params.items())) for t in st.trials]
    assert len(set(params)) == len(params), params               # no config drawn twice
    assert {t.user_attrs['worker'] for t in st.trials} == {0, 1}  # both workers ran trials
    dirs = [Path(t.user_attrs['run_dir']) for t in done]
    assert len(set(dirs)) == len(dirs) and all((d/'results'/'metrics.json').exists() for d in dirs)

def test_workers_seeing_the_same_study_draw_apart(tmp_path):
    "What two workers started together see: the same stored trials. Worker numbers 0 and 1 draw different configs;"
    "two workers numbered alike would draw the same one (this is why `--worker` exists)."
    pytest.importorskip('optuna')
    from xaimm_nb.experiments import sweep
    first = lambda db, w: sweep('tiny', 'sweep_tiny', n_trials=1, storage=f"sqlite:///{tmp_path/db}", study_name='s',
                                out=tmp_path/f'runs-{db}', overrides=SMALL, worker=w, progress=False).trials[0].params
    a, b, c = first('a.db', 0), first('b.db', 1), first('c.db', 0)
    assert a != b and a == c, (a, b, c)
