"Edge cases of xaimm_nb.core that would clutter the notebook."
import json, os, dataclasses, typing
from dataclasses import dataclass, field
import pytest, torch
from xaimm_nb.core import (atomic_write, save_json, load_json, load_yaml, save_state, load_state, from_dict, to_dict,
                           apply_overrides, load_config, ConfigError, set_seed, RunDir)

@dataclass
class Inner: k: int = 1; names: list[str] = field(default_factory=list); mode: typing.Literal['a', 'b'] = 'a'
@dataclass
class Outer: x: float = 0.5; inner: Inner = field(default_factory=Inner); opt: int | None = None

def test_unknown_nested_key_names_path_and_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.nmaes'; did you mean 'names'\?"):
        from_dict(Outer, {'inner': {'nmaes': ['a']}})

def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: k, names, mode"):
        from_dict(Outer, {'inner': {'zzzzzz': 1}})

def test_types_checked():
    with pytest.raises(ConfigError, match=r"inner.names\[1\]: expected str, got 3"): from_dict(Outer, {'inner': {'names': ['a', 3]}})
    with pytest.raises(ConfigError, match="inner.mode: must be one of"): from_dict(Outer, {'inner': {'mode': 'c'}})
    with pytest.raises(ConfigError, match="inner.k: expected int, got True"): from_dict(Outer, {'inner': {'k': True}})
    with pytest.raises(ConfigError, match="opt: expected int or NoneType"): from_dict(Outer, {'opt': 'x'})
    assert from_dict(Outer, {'x': 1}).x == 1.0 and isinstance(from_dict(Outer, {'x': 1}).x, float)

def test_roundtrip_and_overrides(tmp_path):
    c = from_dict(Outer, apply_overrides({}, ['inner.names=[a, b]', 'opt=null', 'x=2e-1']))
    assert c == Outer(x=0.2, inner=Inner(names=['a', 'b']))
    assert from_dict(Outer, to_dict(c)) == c
    with pytest.raises(ConfigError, match="must look like key.sub=value"): apply_overrides({}, ['oops'])
    with pytest.raises(ConfigError, match="'x' is a value, not a section"): apply_overrides({'x': 1}, ['x.y=2'])

def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / 'a.json'; save_json(p, {'v': 1})
    def boom(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError): save_json(p, {'v': 2})
    assert load_json(p) == {'v': 1} and [f.name for f in tmp_path.iterdir()] == ['a.json']

def test_load_state_rejects_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self): return (print, ('pwned',))
    torch.save({'x': Evil()}, tmp_path / 'e.pt')
    with pytest.raises(ValueError, match="not a readable state-dict checkpoint"): load_state(tmp_path / 'e.pt')
    with pytest.raises(FileNotFoundError, match="checkpoint not found"): load_state(tmp_path / 'none.pt')

def test_load_yaml_rejects_non_mapping_and_unsafe(tmp_path):
    (tmp_path / 'l.yaml').write_text('- 1\n- 2\n')
    with pytest.raises(ValueError, match="expected a mapping"): load_yaml(tmp_path / 'l.yaml')
    (tmp_path / 'u.yaml').write_text('a: !!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(ValueError, match="not valid YAML"): load_yaml(tmp_path / 'u.yaml')

def test_load_config_prefixes_file(tmp_path):
    (tmp_path / 'c.yaml').write_text('inner:\n  kk: 2\n')
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'inner.kk'; did you mean 'k'\?"): load_config(Outer, tmp_path / 'c.yaml')

def test_rundir_meta_kept_on_reopen(tmp_path):
    r = RunDir(tmp_path / 'r', config={'a': 1}, seed=3); r.finish(status='ok')
    m = load_json(tmp_path / 'r' / 'meta.json')
    assert m['seed'] == 3 and m['status'] == 'ok' and m['end']


# --- one process per run directory; file permissions (issue 17, items 5 and 6)
import socket, stat, subprocess, sys, time, warnings
from filelock import FileLock, Timeout

def _child_holding(path):
    "A python process that opens `RunDir(path)` and sleeps; returns once it holds the folder."
    code = ("import sys, time; from xaimm_nb.core import RunDir; r = RunDir(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, '-c', code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline().strip()
    if line != 'ready': p.kill(); pytest.fail(f"the child process did not take the lock: {p.communicate()[1][-2000:]}")
    return p

def _locked_elsewhere(path)->bool:
    "Whether a second descriptor (as another process would) finds the folder's flock taken."
    try: FileLock(path/'.lock').acquire(blocking=False)
    except Timeout: return True
    return False  # the probe's own hold ends when it is dropped

def test_second_process_fails_at_once_naming_the_holder(tmp_path):
    run = tmp_path/'run'; p = _child_holding(run)
    try:
        t = time.time()
        with pytest.raises(RuntimeError) as e: RunDir(run, config={'a': 1}, seed=1)
        dt = time.time() - t
        held = load_json(run/'.lock.json')
    finally: p.kill(); p.communicate()
    assert dt < 1, f"took {dt:.1f} s: the second process must not wait"
    assert held['pid'] == p.pid and held['host'] == socket.gethostname()
    msg = str(e.value)
    assert type(e.value).__name__ == 'RunLockedError' and str(run) in msg
    assert f"PID {p.pid} on host {socket.gethostname()} (started {held['start']})" in msg
    assert not (run/'config.yaml').exists()                                      # the loser wrote nothing

def test_stale_lock_of_a_killed_process_is_taken_over_with_a_notice(tmp_path):
    run = tmp_path/'run'; p = _child_holding(run)
    p.kill(); p.communicate()                                                    # SIGKILL: no cleanup ran
    assert load_json(run/'.lock.json')['pid'] == p.pid and not _locked_elsewhere(run)
    with pytest.warns(UserWarning, match=f"taking over the lock of PID {p.pid} on host"):
        r = RunDir(run, config={'a': 1})
    assert load_json(run/'.lock.json')['pid'] == os.getpid() and _locked_elsewhere(run)
    r.finish()
    assert not (run/'.lock.json').exists() and not _locked_elsewhere(run)

def test_nested_rundirs_of_one_folder_share_the_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                           # no takeover notice in one process
        outer = RunDir('run', config={'a': 1})
        inner = RunDir(tmp_path/'run'/'..'/'run', seed=2)                        # another spelling of the same folder
        inner.finish()
    assert _locked_elsewhere(tmp_path/'run') and (tmp_path/'run'/'.lock.json').exists()   # the outer hold remains
    with outer: pass                                                             # `with` releases too
    assert not _locked_elsewhere(tmp_path/'run') and not (tmp_path/'run'/'.lock.json').exists()

@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try: fs = [save_json(tmp_path/'m.json', {}), save_state(tmp_path/'m.pt', {'w': torch.ones(1)}),
               atomic_write(tmp_path/'a.txt', 'x')]
    finally: os.umask(old)
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in fs} == {f.name: oct(mode) for f in fs}
    from xaimm_nb.core import _umask
    old = os.umask(umask)
    try: assert _umask() == _umask('/no/such/status') == umask and os.umask(umask) == umask  # read, and left as it was
    finally: os.umask(old)


# --- range-checked configs, duplicate YAML keys, state-dict mismatches, RunConfig in core (issue 17, items 4 and 8)
import ast
from pathlib import Path
from xaimm_nb import core

@dataclass
class Ranged:
    n: core.PosInt = 1; k: core.NonNegInt = 0; seed: core.Seed = 0; p: core.Prob = .5; lr: core.PosFloat = 1e-3
    size: core.PosInt | None = None; betas: tuple[core.Prob, core.Prob] = (0., .9)

@pytest.mark.parametrize('d, msg', [
    ({'seed': 10**20}, "seed=100000000000000000000: must be an int in [0, 4294967295]"),
    ({'seed': -1}, "seed=-1: must be an int in [0, 4294967295]"),
    ({'n': 0}, "n=0: must be an int >= 1"), ({'k': -1}, "k=-1: must be an int >= 0"),
    ({'size': 0}, "size=0: must be an int >= 1"),                       # Optional keeps the range of its type
    ({'p': 1.01}, "p=1.01: must be a float in [0, 1]"), ({'lr': 0}, "lr=0.0: must be a float > 0"),
    ({'lr': float('inf')}, "lr=inf: must be a finite float > 0"), ({'p': float('nan')}, "p=nan: must be a finite"),
    ({'betas': [0.5, 2]}, "betas[1]=2.0: must be a float in [0, 1]"),
    ({'betas': [0.5]}, "betas: expected 2 values, got 1"),
])
def test_out_of_range_values_name_key_value_and_range(d, msg):
    with pytest.raises(ConfigError) as e: from_dict(Ranged, d, 'sec')
    assert f"sec.{msg}" in str(e.value)

def test_in_range_values_and_none_pass():
    c = from_dict(Ranged, {'seed': 2**32 - 1, 'p': 1, 'lr': '1e-3', 'size': None, 'k': 0, 'betas': [0, 0.999]})
    assert (c.seed, c.p, c.lr, c.size, c.betas) == (2**32 - 1, 1.0, 1e-3, None, (0., .999))
    with pytest.raises(ConfigError, match="n: expected int, got True"): from_dict(Ranged, {'n': True})

def test_range_describes_itself():
    R = core.Range
    assert [str(r) for r in (R(1), R(0, 1), R(0, open_lo=True), R(0, 1, open_hi=True), R(hi=5))] == \
           ['>= 1', 'in [0, 1]', '> 0', 'in [0, 1)', '<= 5']
    assert 0 not in R(0, open_lo=True) and 1 in R(0, 1) and float('nan') not in R()

@pytest.mark.parametrize('text, key, lines', [
    ('seed: 0\nstages: [synth]\nseed: 5\n', 'seed', (1, 3)),
    ('train:\n  epochs: 1\n  lr: 0.1\n  epochs: 2\n', 'epochs', (2, 4)),
    ('a:\n  - {x: 1, x: 2}\n', 'x', (2, 2)),
])
def test_duplicate_yaml_keys_name_file_key_and_both_lines(tmp_path, text, key, lines):
    (tmp_path/'d.yaml').write_text(text)
    with pytest.raises(ConfigError) as e: load_yaml(tmp_path/'d.yaml')
    assert f"d.yaml: key '{key}' is given twice, on lines {lines[0]} and {lines[1]}" in str(e.value)

def test_yaml_merge_may_override_and_overrides_refuse_duplicates(tmp_path):
    (tmp_path/'m.yaml').write_text('base: &b {lr: 1, bs: 8}\nopt:\n  <<: *b\n  lr: 2\n')
    assert load_yaml(tmp_path/'m.yaml')['opt'] == {'lr': 2, 'bs': 8}
    with pytest.raises(ConfigError, match="override 'train={bs: 1, bs: 2}': key 'bs' is given twice"):
        apply_overrides({}, ['train={bs: 1, bs: 2}'])

def test_load_into_names_missing_unexpected_and_misshapen_keys():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    st = {**m.state_dict(), 'extra.w': torch.zeros(7)}; del st['2.bias']; st['0.weight'] = torch.zeros(5, 3)
    with pytest.raises(ValueError) as e: core.load_into(m, st, 'my.pt', 'use the right config')
    msg = str(e.value)
    assert msg.startswith('my.pt does not fit the Sequential: ') and msg.endswith('. Fix: use the right config')
    for s in ('1 missing key(s): 2.bias [2]', '1 unexpected key(s): extra.w [7]',
              '1 key(s) of another shape: 0.weight [5, 3] in the checkpoint vs [4, 3] in the model'): assert s in msg
    many = {f'{i}.weight': torch.zeros(1) for i in range(10)}
    with pytest.raises(ValueError) as e: core.load_into(torch.nn.Sequential(), many)
    assert "10 unexpected key(s): 0.weight [1], 1.weight [1], 2.weight [1] (+7 more)" in str(e.value)

PKG, TOP = Path(core.__file__).parent, ('pipeline', 'experiments', 'cli')   # the layers above every other module

def _imports(path):
    "Dotted xaimm_nb modules imported anywhere in `path` (top level or inside functions)."
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module:
            out.add(n.module.removeprefix('xaimm_nb.') if not n.level else n.module)
        elif isinstance(n, ast.Import): out |= {a.name.removeprefix('xaimm_nb.') for a in n.names}
    return out

def test_no_lower_layer_imports_the_pipeline():
    "`gan` used to import `RunConfig` from `pipeline` (a lower layer reaching up); now only cli/experiments may."
    bad = {str(p.relative_to(PKG)): [m for m in _imports(p) if m.split('.')[-1] in TOP]
           for p in PKG.rglob('*.py') if p.stem not in (*TOP, '_modidx')}
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}
    from xaimm_nb.pipeline import RunConfig as R
    assert R is core.RunConfig


def test_meta_records_what_decides_float_rounding(tmp_path):
    "meta.json names the CPU, PyTorch's kernel family and the thread count: runs are byte-identical only when they match."
    import torch
    from xaimm_nb.core import RunDir, load_json
    RunDir(tmp_path/'r').finish()
    m = load_json(tmp_path/'r'/'meta.json')
    assert m['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    assert m['threads'] == torch.get_num_threads() and m['cpu']


def test_get_device_auto_and_absent_devices(monkeypatch):
    "'auto' (and None) is CUDA when present, else the CPU, never MPS; a named device that is absent is an error."
    from xaimm_nb.core import get_device
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert get_device('auto') == get_device(None) == torch.device('cuda')
    assert get_device('cuda:1') == torch.device('cuda:1')
    with pytest.raises(RuntimeError, match=r"device='cuda:2': this machine has 2 CUDA device\(s\), cuda:0..cuda:1"):
        get_device('cuda:2')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)
    assert get_device('auto') == torch.device('cpu') and get_device('mps') == torch.device('mps')  # MPS when named
    with pytest.raises(RuntimeError, match="CUDA is not available here; use device='auto'"): get_device('cuda')
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match="MPS .* is not available here"): get_device('mps')
    with pytest.raises(ValueError, match="device='gpu' names no device"): get_device('gpu')
