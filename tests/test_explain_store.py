"""Explanation stores across processes: two gloo ranks equal one process; a SIGKILLed two-rank run resumes to the
same store."""
import os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from safetensors.torch import load_file
from xaimm_nb.cli import main
from xaimm_nb.explain.store import open_store

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).parent/'torchrun'
SET = ['--set', 'data.n_test=32', 'explain.methods={gradcampp: {}, lime: {num_samples: 48, segmentation: grid}}']
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg',
           TOKENIZERS_PARALLELISM='false', XAIMM_PROGRESS='0')

def _args(run, store): return ['explain', '--config', 'tiny', *SET, '--out', str(run), '--store', str(store),
                               '--shard-size', '4']

def _torchrun(run, store, n=2, **kw):
    "A `torchrun --nproc_per_node n xaimm explain --store` process."
    cmd = [str(TORCHRUN), '--standalone', f'--nproc_per_node={n}', str(Path(sys.executable).parent/'xaimm'),
           *_args(run, store)]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            **kw)

def _same(a, b):
    "Two stores hold the same rows and the same maps, byte for byte."
    pd.testing.assert_frame_equal(open_store(a).scores, open_store(b).scores)
    fa, fb = sorted(p.name for p in (a/'maps').iterdir()), sorted(p.name for p in (b/'maps').iterdir())
    assert fa == fb
    for f in fa:
        x, y = load_file(a/'maps'/f), load_file(b/'maps'/f)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f

@pytest.fixture(scope='module')
def one(tmp_path_factory):
    "The tiny config's classifier (trained here) and its single-process store."
    d = tmp_path_factory.mktemp('store')
    assert main(_args(d/'run', d/'one')) == 0
    return d

def _tree(pid):
    "`pid` and its descendants (torchrun starts each rank in a session of its own: killpg misses them)."
    try: kids = Path(f'/proc/{pid}/task/{pid}/children').read_text().split()
    except OSError: kids = []
    return [pid, *(q for k in kids for q in _tree(int(k)))]

def _kill(p):
    "SIGKILL a launcher and every process it started, by id."
    for q in _tree(p.pid):
        try: os.kill(q, signal.SIGKILL)
        except ProcessLookupError: pass
    p.communicate()

def _wait(p, timeout=120):
    try: out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired: _kill(p); raise
    assert p.returncode == 0, out.decode()[-3000:]

def test_two_ranks_equal_one(one):
    _wait(_torchrun(one/'run', one/'two'))
    st = open_store(one/'two')
    assert st.complete and len(st.scores) == 32 * 3
    ranks = {pd.read_json(f, typ='series')['rank'] for f in (one/'two'/'timings').iterdir()}
    assert ranks == {0, 1}, ranks
    _same(one/'one', one/'two')

def test_sigkill_then_resume(one):
    store = one/'killed'
    p = _torchrun(one/'run', store)
    try:
        t0 = time.time()
        while not (store/'scores').exists() or len(list((store/'scores').glob('*.parquet'))) < 2:
            assert p.poll() is None and time.time() - t0 < 120, "the run ended before it could be killed"
            time.sleep(.02)
    finally: _kill(p)
    n = open_store(store).n_done
    assert 2 <= n < 8, n  # killed mid-way
    _wait(_torchrun(one/'run', store))
    _same(one/'one', store)
