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
