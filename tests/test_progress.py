"Progress bars (`core.progress`): drawn when forced, silent in tests and pipes by default, never changing a number."
import io, os, re, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np, pytest, torch
from xaimm_nb.core import progress, show_progress
from xaimm_nb.explain.core import explain
from xaimm_nb.models.dual import CLIPAdapter
from xaimm_nb.test_utils import tiny_batch, tiny_model, tiny_clip
from xaimm_nb.metrics.xai import xai_table
from xaimm_nb.gan import WGANConfig, train_wgan

torch.set_num_threads(1)
ETA = re.compile(r'\[(\d+)/(\d+) \d\d:\d\d<(\d\d:\d\d|\?)')  # fastprogress: [done/total elapsed<left]


class Tty(io.StringIO):
    "A stdout that says it is a terminal."
    def isatty(self): return True


@pytest.fixture(autouse=True)
def no_env(monkeypatch): monkeypatch.delenv('XAIMM_PROGRESS', raising=False)


@pytest.fixture(scope='module')
def mm(): return tiny_model(3)


@pytest.fixture(scope='module')
def batch(): return tiny_batch(2)


@pytest.fixture(scope='module')
def clip():
    torch.manual_seed(0); return CLIPAdapter(tiny_clip(layers=3))


def clip_batch(n=2):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 100, (n, 7), generator=g); ids[:, 0] = 0; ids[:, 5] = 1
    m = (torch.arange(7) <= 5).long().expand(n, -1).clone()
    return dict(images=torch.randn(n, 3, 32, 32, generator=g), input_ids=ids, attention_mask=m)


def bars(out):
    "The labels of the bars drawn into `out` (text before ' |')."
    return {f.split(' |')[0] for f in out.split('\r') if ' |' in f}


# --- when a bar is drawn
def test_silent_under_pytest_and_in_pipes(monkeypatch):
    assert os.environ.get('PYTEST_CURRENT_TEST') and not show_progress()
    monkeypatch.delenv('PYTEST_CURRENT_TEST'); monkeypatch.delenv('IN_TEST', raising=False)
    monkeypatch.setattr(sys, 'stdout', io.StringIO())
    assert not show_progress()  # a pipe or a log file
    monkeypatch.setattr(sys, 'stdout', Tty())
    assert show_progress()  # a terminal
    monkeypatch.setenv('IN_TEST', '1'); assert not show_progress()  # nbdev-test


@pytest.mark.parametrize('env,want', [('0', False), ('off', False), ('1', True), ('yes', True)])
def test_env_decides_when_the_caller_does_not(monkeypatch, env, want):
    monkeypatch.setenv('XAIMM_PROGRESS', env)
    assert show_progress() is want and show_progress(True) and not show_progress(False)


def test_bad_env_is_named(monkeypatch):
    monkeypatch.setenv('XAIMM_PROGRESS', 'sometimes')
    with pytest.raises(ValueError, match="XAIMM_PROGRESS='sometimes' is not understood; set it to 0"): show_progress()


def test_forced_bar_has_an_eta_and_ends_its_line(capsys):
    assert list(progress(range(4), desc='work', show=True)) == [0, 1, 2, 3]
    out = capsys.readouterr().out
    assert bars(out) == {'work'} and out.endswith('\n')
    assert ETA.search(out.split('\r')[-1]).groups()[:2] == ('4', '4')


def test_off_or_empty_returns_the_iterable_itself(capsys):
    r = range(3)
    assert progress(r) is r and progress(r, show=False) is r and progress([], show=True) == []
    assert capsys.readouterr().out == ''


def test_nested_bar_names_the_outer_step_and_is_wiped(capsys):
    for i in progress(range(2), desc='outer', show=True):
        for j in progress(range(3), desc='inner', show=True): pass
    out = capsys.readouterr().out
    assert bars(out) == {'outer', 'outer 1/2 · inner', 'outer 2/2 · inner'}
    assert out.count('\n') == 1  # only the outer bar leaves a line


def test_a_loop_left_by_an_exception_is_no_outer_bar(capsys):
    def broken():
        it = progress(range(3), desc='broken', show=True)  # a local: the traceback keeps the suspended bar alive
        for i in it: raise KeyError(i)
    with pytest.raises(KeyError) as err: broken()
    list(progress(range(2), desc='next', show=True))
    assert 'next' in bars(capsys.readouterr().out) and err.value is not None


# --- explain: every multi-pass method draws one, single-pass ones none; the numbers do not move
CASES = [('lime', dict(num_samples=40, segmentation='grid', batch_size=16), 'lime'),
         ('scorecam', dict(batch_size=4), 'scorecam'),
         ('ig', dict(n_steps=8, internal_batch_size=4), 'ig'),
         ('smoothgrad', dict(n=6, internal_batch_size=4), 'smoothgrad')]


@pytest.mark.parametrize('method,opts,label', CASES)
def test_explain_bar_and_same_numbers(capsys, mm, batch, method, opts, label):
    quiet = explain(mm, batch, method, **opts)
    assert capsys.readouterr().out == ''  # the default in tests: no bar
    shown = explain(mm, batch, method, progress=True, **opts)
    out = capsys.readouterr().out
    assert bars(out) == {label} and ETA.search(out)
    for k in ('image', 'text'):
        a, b = getattr(quiet, k), getattr(shown, k)
        assert (a is None and b is None) or torch.equal(a, b), (method, k)
    assert quiet.meta['n_forward'] == shown.meta['n_forward']
    explain(mm, batch, method, progress=False, **opts)
    assert capsys.readouterr().out == ''


def test_m2ib_bar_per_modality_and_same_numbers(capsys, clip):
    b = clip_batch()
    quiet = explain(clip, b, 'm2ib', steps=3, n_samples=2)
    assert capsys.readouterr().out == ''
    shown = explain(clip, b, 'm2ib', steps=3, n_samples=2, progress=True)
    assert bars(capsys.readouterr().out) == {'m2ib image', 'm2ib text'}
    assert torch.equal(quiet.image, shown.image) and torch.equal(quiet.text, shown.text)


def test_single_pass_methods_draw_nothing(capsys, mm, batch):
    explain(mm, batch, 'gradcam', progress=True); explain(mm, batch, 'saliency', progress=True)
    assert capsys.readouterr().out == ''


def test_env_off_silences_explain_on_a_terminal(monkeypatch, mm, batch):
    monkeypatch.delenv('PYTEST_CURRENT_TEST'); monkeypatch.delenv('IN_TEST', raising=False)
    monkeypatch.setattr(sys, 'stdout', Tty())
    explain(mm, batch, 'lime', num_samples=40, segmentation='grid')
    assert 'lime |' in sys.stdout.getvalue()
    monkeypatch.setattr(sys, 'stdout', Tty()); monkeypatch.setenv('XAIMM_PROGRESS', '0')
    explain(mm, batch, 'lime', num_samples=40, segmentation='grid')
    assert sys.stdout.getvalue() == ''


# --- the long loops around explain
def test_xai_table_bars_nest_and_numbers_match(capsys, mm):
    b = tiny_batch(4)
    ms = {'gradcam': {}, 'lime': dict(num_samples=40, segmentation='grid')}
    t0, _, e0 = xai_table(mm, b, ms, bs=2)
    assert capsys.readouterr().out == ''
    t1, _, e1 = xai_table(mm, b, ms, bs=2, progress=True)
    out = capsys.readouterr().out
    assert {'xai_table: explain', 'xai_table: score', 'xai_table: explain 2/2 · lime'} <= bars(out), bars(out)
    cols = [c for c in t0.columns if c != 's/sample']
    assert t0[cols].equals(t1[cols]) and torch.equal(e0['lime'].image, e1['lime'].image)


def test_xai_table_verbose_prints_only_where_no_bar_is_drawn(capsys, mm):
    b = tiny_batch(2)
    xai_table(mm, b, ['gradcam'], verbose=True)
    assert re.fullmatch(r'gradcam: \d+\.\d{3} s/sample\n', capsys.readouterr().out)
    xai_table(mm, b, ['gradcam'], verbose=True, progress=True)
    assert 's/sample' not in capsys.readouterr().out


def toy(n=24, K=3, S=32):
    "GAN data: class k = a bright block at a class-specific place; s = the colour of a bottom band."
    y, s = np.arange(n) % K, np.random.default_rng(0).integers(0, 2, n)
    x = np.full((n, S, S, 3), 50, np.uint8)
    for i in range(n): x[i, 4:14, 2 + 9*y[i]:10 + 9*y[i]] = 220; x[i, -4:, :, s[i]] = 255
    return dict(images=x, visual=y, s=s)


def test_gan_loop_bar(capsys):
    kw = dict(g_dim=8, d_dim=8, z_dim=16, bs=8, steps=3, n_critic=1, clf_dim=4, clf_epochs=1, eval_every=0, eval_n=16)
    r0 = train_wgan(WGANConfig(**kw), toy())
    assert capsys.readouterr().out == ''
    r1 = train_wgan(WGANConfig(**kw, progress=True), toy())
    out = capsys.readouterr().out
    assert bars(out) == {'wgan'} and ETA.search(out.split('\r')[-1]).groups()[:2] == ('3', '3')
    assert all(torch.equal(p, q) for p, q in zip(r0.G.state_dict().values(), r1.G.state_dict().values()))


def test_a_notebook_gets_the_html_bar_and_a_redirect_the_text_bar():
    nbformat, nbclient = pytest.importorskip('nbformat'), pytest.importorskip('nbclient')
    code = ["from xaimm_nb.core import progress\nfor i in progress(range(3), desc='nb', show=True): pass",
            "import io, contextlib\nwith contextlib.redirect_stdout(io.StringIO()) as f:\n"
            "    for i in progress(range(3), desc='nb', show=True): pass\nprint(repr(f.getvalue().split(chr(13))[-1]))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    nbclient.NotebookClient(nb, kernel_name='python3', timeout=120).execute()
    html = ' '.join(o.data.get('text/html', '') for o in nb.cells[0].outputs if o.output_type == 'display_data')
    assert re.search(r'<progress max="3" value="3"></progress> 100.00% \[3/3 00:00&lt;00:00\.\.\. nb\]', html), html
    assert not any(o.output_type == 'stream' for o in nb.cells[0].outputs)
    text = nb.cells[1].outputs[-1].text
    assert 'nb |' in text and '[3/3 ' in text and not any(o.output_type == 'display_data' for o in nb.cells[1].outputs)
