"Every shipped config is valid: all its sections parse before anything would run."
from pathlib import Path
import pytest
from xaimm_nb.core import load_yaml
from xaimm_nb.pipeline import parse_config

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1]/'configs').glob('*.yaml') if not p.name.startswith('sweep'))

@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    d = load_yaml(path)
    d['device'] = 'cpu'  # full.yaml asks for cuda, which CI machines lack
    cfg = parse_config(d)
    assert cfg.stages and all(isinstance(s, str) for s in cfg.stages)

def test_configs_found():
    assert {'default.yaml', 'tiny.yaml', 'full.yaml'} <= {p.name for p in CONFIGS}

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
