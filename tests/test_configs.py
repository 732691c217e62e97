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
