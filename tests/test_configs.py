"Every shipped config is valid: all its sections parse before anything would run."
from pathlib import Path
import pytest
from xaimm_nb.core import load_yaml
from xaimm_nb.pipeline import parse_config

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1]/'configs').glob('*.yaml') if not p.name.startswith('sweep'))

def _fill_in(d, tmp):
    "`d` with its placeholder data paths (/path/to/coco/...) pointing to a small COCO 2017 folder written under `tmp`."
    from test_sources import write_coco
    if 'path/to/' not in str(d.get('data')): return d
    co = write_coco(tmp/'coco', 'train2017', n=20); write_coco(co, 'val2017', n=4)
    d['data']['path'] = {k: v.replace('/path/to/coco', str(co)) for k, v in d['data']['path'].items()}
    return d

@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_parses(path, tmp_path):
    d = _fill_in(load_yaml(path), tmp_path)
    d['device'] = 'cpu'  # full.yaml and synth224.yaml ask for cuda, which CI machines lack
    cfg = parse_config(d)
    assert cfg.stages and all(isinstance(s, str) for s in cfg.stages)

def test_configs_found():
    assert {'default.yaml', 'tiny.yaml', 'full.yaml', 'synth224.yaml'} <= {p.name for p in CONFIGS}

def test_full_is_the_real_data_run(tmp_path):
    "full.yaml: the paper's towers on your data (the COCO layout its comments give); SynthMM at 224 px: synth224.yaml."
    from xaimm_nb.data.sources import DataConfig
    from xaimm_nb.data.synth import SynthConfig
    from xaimm_nb.pipeline import data_splits, section, _data_cfg
    d = load_yaml(CONFIGS[0].parent/'full.yaml')
    assert (d['model']['preset'], d['device'], d['data']['source']) == ('full', 'cuda', 'coco')
    cfg = parse_config(dict(_fill_in(d, tmp_path), device='cpu'))
    assert isinstance(section(cfg, 'data', _data_cfg), DataConfig) and 'r2r' not in cfg.stages  # COCO: no artefact
    sp = data_splits(cfg)
    assert {k: len(v) for k, v in sp.items()} == dict(train=18, valid=2, test=4)
    assert sp['test'].classes == ['cat', 'dog']
    assert 'object' in sp['test'][0]['masks']  # explanations are scored against the instance masks
    s = load_yaml(CONFIGS[0].parent/'synth224.yaml')
    assert s['model']['preset'] == 'full' and s['data']['size'] == 224
    assert isinstance(section(parse_config(dict(s, device='cpu')), 'data', _data_cfg), SynthConfig)

def _layers(path):
    "{method: layer} for the explanation methods a config gives a `layer:`."
    ms = (load_yaml(path).get('explain') or {}).get('methods') or {}
    return {m: o['layer'] for m, o in ms.items() if isinstance(o, dict) and 'layer' in o} if isinstance(ms, dict) else {}

@pytest.mark.parametrize('path', [p for p in CONFIGS if _layers(p)], ids=lambda p: p.name)
def test_config_cam_layers_exist(path):
    "A `layer:` that a shipped config gives an explanation method names a module of the model that config builds."
    from xaimm_nb.pipeline import section
    from xaimm_nb.models.fusion import ModelConfig
    from xaimm_nb.explain.cam import cam_layer
    d = load_yaml(path); d['device'] = 'cpu'
    cfg = parse_config(d)
    mc = section(cfg, 'model', ModelConfig)
    if mc.preset == 'full': pytest.skip('the full preset downloads its weights')
    model = mc.build(cfg.data.get('n_classes', 4))
    for m, layer in _layers(path).items(): assert cam_layer(model, None, layer) is model.get_submodule(layer), m


# --- every numeric setting is range-checked at parse time (issue 17, item 4)
import dataclasses, typing
from xaimm_nb.core import Range, ConfigError, RunConfig, from_dict

def _config_classes():
    from xaimm_nb.data.synth import SynthConfig
    from xaimm_nb.models.fusion import ModelConfig
    from xaimm_nb.models.dual import DualConfig
    from xaimm_nb.train import TrainConfig
    from xaimm_nb.gan import WGANConfig
    from xaimm_nb.explain.benchmark import DualBenchConfig
    from xaimm_nb.fairness.r2r import R2RConfig
    from xaimm_nb.pipeline import ExplainConfig, _STAGES, _cls
    cs = {SynthConfig, ModelConfig, DualConfig, TrainConfig, WGANConfig, DualBenchConfig, R2RConfig, ExplainConfig,
          RunConfig}
    secs = [_cls(c) for _, ss, *_ in _STAGES.values() for c in ss.values()]
    return cs | {c for c in secs if isinstance(c, type)}  # and any section a stage adds (`data` has a parser)

def _unranged(t):
    "The int/float parts of annotation `t` that carry no `Range`."
    o, args = typing.get_origin(t), typing.get_args(t)
    if o is typing.Annotated: return [] if any(isinstance(a, Range) for a in args[1:]) else _unranged(args[0])
    if t in (int, float): return [t.__name__]
    return [x for a in args for x in _unranged(a)]

@pytest.mark.parametrize('cls', sorted(_config_classes(), key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_numeric_config_field_has_a_range(cls):
    hints = typing.get_type_hints(cls, include_extras=True)
    assert {f.name: u for f in dataclasses.fields(cls) if (u := _unranged(hints[f.name]))} == {}
    for f in dataclasses.fields(cls):  # every default lies in its own range
        if f.default is not dataclasses.MISSING: from_dict(cls, {f.name: f.default})

@pytest.mark.parametrize('override, msg', [
    ({'seed': 10**20}, "seed=100000000000000000000: must be an int in [0, 4294967295]"),
    ({'train': {'size': 0}}, "train.size=0: must be an int >= 1"),
    ({'train': {'lr': 0}}, "train.lr=0.0: must be a float > 0"),
    ({'data': {'rho_ys': 1.5}}, "data.rho_ys=1.5: must be a float in [0, 1]"),
    ({'gan': {'betas': [0.5, 1.0]}}, "gan.betas[1]=1.0: must be a float in [0, 1)"),
    ({'dual': {'dual': {'bs': 0}}}, "dual.dual.bs=0: must be an int >= 1"),
    ({'r2r': {'n_classes': 1}}, "r2r.n_classes=1: must be an int in [2, 8]"),
    ({'explain': {'n_show': 0}}, "explain.n_show=0: must be an int >= 1"),
    ({'device': 'gpu'}, "device='gpu': must be 'auto' (CUDA when present, else the CPU), 'cpu', 'cuda'"),
    ({'gan': {'device': 'cuda:x'}}, "gan.device='cuda:x': must be 'auto'"),
    ({'r2r': {'device': 'tpu'}}, "r2r.device='tpu': must be 'auto'"),
    ({'dual': {'device': ''}}, "dual.device='': must be 'auto'"),
])
def test_tiny_config_refuses_out_of_range_values(override, msg):
    d = load_yaml(CONFIGS[0].parent/'tiny.yaml')
    for k, v in override.items(): d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    with pytest.raises(ConfigError) as e: parse_config(d)
    assert msg in str(e.value)

def test_api_entry_points_validate_before_writing(tmp_path):
    "`run_pipeline` and `train_wgan_from_config` refuse a bad value before the run directory exists."
    from xaimm_nb.pipeline import run_pipeline
    from xaimm_nb.gan import train_wgan_from_config
    with pytest.raises(ConfigError, match=r"seed=-1: must be an int in \[0, 4294967295\]"):
        run_pipeline({'seed': -1}, tmp_path/'a', log=lambda s: None)
    (tmp_path/'c.yaml').write_text('gan: {steps: -2}\n')
    with pytest.raises(ConfigError, match=r"c.yaml: gan.steps=-2: must be an int >= 0"):
        train_wgan_from_config(tmp_path/'c.yaml', tmp_path/'b')
    assert not (tmp_path/'a').exists() and not (tmp_path/'b').exists()


def test_device_auto_in_every_section():
    "Every config with a device field takes 'auto' (the shipped CPU-sized configs' choice), resolved when a run starts."
    import torch
    from xaimm_nb.core import get_device
    with_device = [c for c in _config_classes() if 'device' in {f.name for f in dataclasses.fields(c)}]
    assert {c.__name__ for c in with_device} >= {'RunConfig', 'TrainConfig', 'WGANConfig', 'DualBenchConfig',
                                                 'R2RConfig'}
    for c in with_device: assert from_dict(c, {'device': 'auto'}).device == 'auto'
    assert RunConfig().device == 'auto'
    assert {n: load_yaml(CONFIGS[0].parent/f'{n}.yaml')['device'] for n in ('default', 'tiny', 'synth224', 'full')} == \
        dict(default='auto', tiny='auto', synth224='auto', full='cuda')  # full: a GPU is required at that size
    assert get_device('auto') == torch.device('cuda' if torch.cuda.is_available() else 'cpu')
