"""The package as a user gets it: the wheel ships the built-in configs and templates, and `xaimm run` / `xaimm ablate`
run from an empty folder with only the installed wheel importable (the repository's source tree hidden)."""
import importlib.util, os, shutil, subprocess, sys, time, tomllib, zipfile
from pathlib import Path
import pytest
from xaimm_nb.experiments import config_path, template_path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1',
       'TOKENIZERS_PARALLELISM': 'false'}
SETUP = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['setuptools']
SMALL = ['data.n_train=64', 'data.n_valid=32', 'data.n_test=32', 'data.n_conflict=32']  # ablate's --set

def _no_build():
    "Why a wheel cannot be built here (None when it can): pip and the build backend must be importable."
    for m in ('pip', 'setuptools'):
        if importlib.util.find_spec(m) is None: return f'{m} is not installed'

# Hides the repository from every interpreter of the test (the commands and papermill's kernels): drops setuptools'
# editable-install finder and path hook (they would serve `xaimm_nb.*` modules missing from the wheel out of the source
# tree) and the repository's paths; at exit, each process that imported xaimm_nb writes where it came from.
HIDE = """import atexit, os, sys
root = os.environ['XAIMM_HIDE']
ed = lambda f: getattr(f, '__module__', '').startswith('__editable__')
sys.meta_path[:] = [f for f in sys.meta_path if not ed(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not ed(h)]
sys.path[:] = [p for p in sys.path if '__editable__' not in p and os.path.abspath(p or '.') != root]
def log():
    m = sys.modules.get('xaimm_nb')
    if m: open(os.path.join(os.environ['XAIMM_IMPORTS'], str(os.getpid())), 'w').write(m.__file__)
atexit.register(log)
"""

def test_packages_listed():
    "Every subpackage nbdev exports is in pyproject's explicit list, and the mapped folders exist."
    have = {'.'.join(p.parent.relative_to(ROOT).parts) for p in (ROOT/'xaimm_nb').rglob('__init__.py')}
    mapped = SETUP['package-dir']
    missing = have - set(SETUP['packages'])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    assert set(SETUP['packages']) - have == set(mapped) and all((ROOT/d).is_dir() for d in mapped.values())

def test_editable_install_reads_the_repository(tmp_path, monkeypatch):
    "In a clone the names resolve to the repository's files (the one copy), and a file that exists wins."
    monkeypatch.chdir(tmp_path)
    assert config_path('tiny') == ROOT/'configs'/'tiny.yaml'
    assert template_path('classifier') == ROOT/'experiments'/'classifier.ipynb'
    (tmp_path/'tiny').write_text('seed: 3\n')
    assert config_path('tiny') == Path('tiny')

@pytest.mark.skipif(_no_build() is not None, reason=f'cannot build a wheel here: {_no_build()}')
def test_wheel_runs_without_the_repository(tmp_path):
    "Build the wheel (no network), install it alone into a folder, and run the commands from an empty folder."
    src, whl, site, work, hide, imports = (tmp_path/d for d in ('src', 'whl', 'site', 'work', 'hide', 'imports'))
    for d in (src, work, hide, imports): d.mkdir()
    for f in ('pyproject.toml', 'README.md'): (src/f).write_bytes((ROOT/f).read_bytes())
    for d in ('xaimm_nb', *SETUP['package-dir'].values()):  # a copy, so the build leaves no build/ or egg-info here
        shutil.copytree(ROOT/d, src/d, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    t = time.time()
    pip = lambda *a, **kw: subprocess.run([PY, '-m', 'pip', '-q', '--disable-pip-version-check', *a], **kw,
                                          capture_output=True, text=True, timeout=300)
    r = pip('wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', str(whl), '.', cwd=src)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    print(f'wheel built in {time.time() - t:.1f} s')
    w, = whl.glob('xaimm_nb-*.whl')
    names = set(zipfile.ZipFile(w).namelist())
    want = {f'xaimm_nb/{p.relative_to(ROOT/"xaimm_nb").as_posix()}' for p in (ROOT/'xaimm_nb').rglob('*.py')}
    want |= {f'xaimm_nb/configs/{p.name}' for p in (ROOT/'configs').glob('*.yaml')}
    want |= {f'xaimm_nb/templates/{p.name}' for p in (ROOT/'experiments').glob('*.ipynb')}
    assert want <= names, sorted(want - names)
    r = pip('install', '--no-deps', '--no-index', '--target', str(site), str(w))
    assert r.returncode == 0, r.stderr[-3000:]
    (hide/'sitecustomize.py').write_text(HIDE)
    env = {**ENV, 'PYTHONPATH': f'{site}{os.pathsep}{hide}', 'XAIMM_HIDE': str(ROOT), 'XAIMM_IMPORTS': str(imports)}
    run = lambda *a: subprocess.run(list(a), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    r = run(PY, '-c', "import xaimm_nb, xaimm_nb.models.fusion as m; "
            "from xaimm_nb.experiments import config_path as c, template_path as t; "
            "print(xaimm_nb.__file__, m.__file__, c('tiny'), t('classifier'), sep='\\n')")
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(Path(p).is_relative_to(site) for p in r.stdout.split()), r.stdout
    r = run(PY, '-c', "import sys; print([f for f in sys.meta_path if 'editable' in repr(f)], sys.path)")
    assert r.returncode == 0 and r.stdout.startswith('[]') and repr(str(ROOT)) not in r.stdout, r.stdout + r.stderr
    xaimm = str(site/'bin'/'xaimm')  # the wheel's console script
    t = time.time()
    r = run(xaimm, 'run', '--config', 'tiny', '--out', 'X')
    assert r.returncode == 0, r.stderr[-3000:]
    assert (work/'X'/'results'/'metrics.json').exists()
    print(f'xaimm run --config tiny: {time.time() - t:.1f} s')
    t = time.time()
    r = run(xaimm, 'ablate', '--config', 'tiny', '--seeds', '0', '--ablations', 'full', 'text_only', '--out', 'Y',
            '--set', *SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert all((work/'Y'/a/'seed0'/'results'/'metrics.json').exists() for a in ('full', 'text_only'))
    assert (work/'Y'/'ablations.md').exists()
    print(f'xaimm ablate --config tiny --seeds 0 (2 ablations): {time.time() - t:.1f} s')
    assert sorted(p.name for p in work.iterdir()) == ['X', 'Y']  # nothing written outside the run folders
    used = [Path(f.read_text()) for f in imports.iterdir()]  # first check, run, ablate and its 2 papermill kernels
    assert len(used) == 5 and all(p.is_relative_to(site) for p in used), used

# ---------------------------------------------------------------- a light, quiet install (issue 19)
PROJECT = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
_name = lambda r: r.split(';')[0].split('[')[0].split('<')[0].split('>')[0].split('=')[0].split('~')[0].strip().lower()

def test_heavy_optional_tools_are_extras():
    "grad-cam (pulls opencv, ~180 MB) and optuna are no runtime dependencies: the library never imports them at top level."
    deps, extras = {_name(r) for r in PROJECT['dependencies']}, PROJECT['optional-dependencies']
    assert not {'grad-cam', 'optuna', 'wandb', 'jupyterlab'} & deps, deps
    assert {'grad-cam', 'optuna'} <= {_name(r) for r in extras['dev']}                 # tests and notebooks use them
    assert {'grad-cam'} <= {_name(r) for r in extras['bench']} and {'optuna'} <= {_name(r) for r in extras['sweep']}
    assert {'jupyterlab', 'ipywidgets'} <= {_name(r) for r in extras['notebooks']}
    src = {p: p.read_text() for p in (ROOT/'xaimm_nb').rglob('*.py') if p.name != '_modidx.py'}
    for p, t in src.items():
        assert 'pytorch_grad_cam' not in t and 'import cv2' not in t, p
        assert not any(l.startswith(('import optuna', 'from optuna', 'import wandb')) for l in t.splitlines()), p

def test_sweep_without_optuna_says_what_to_install(monkeypatch):
    from xaimm_nb.experiments import sweep
    monkeypatch.setitem(sys.modules, 'optuna', None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'xaimm-nb\[sweep\]'"): sweep({}, {})

def test_import_prints_no_warnings():
    "Importing every module prints nothing: fastai's `torch.jit.script` FutureWarnings are silenced at our import of it."
    code = ("import importlib, pkgutil, xaimm_nb\n"
            "for m in pkgutil.walk_packages(xaimm_nb.__path__, 'xaimm_nb.'): importlib.import_module(m.name)")
    env = {k: v for k, v in ENV.items() if k != 'PYTHONWARNINGS'}
    r = subprocess.run([PY, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Warning' not in r.stderr, r.stderr[-3000:]
