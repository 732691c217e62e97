"The `xaimm` command end to end, as a user runs it (subprocess, tiny config)."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg'}

def xaimm(*args, cwd=ROOT):
    return subprocess.run([sys.executable, '-c', 'import sys; from xaimm_nb.cli import main; sys.exit(main())', *args],
                          cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)

def test_run_tiny_pipeline_then_resume(tmp_path):
    r = xaimm('run', '--config', 'configs/tiny.yaml', '--out', str(tmp_path/'run'))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path/'run'/'results'/'metrics.json').read_text())
    assert {'synth', 'classifier'} <= set(m) and 0 <= m['classifier']['test']['accuracy'] <= 1
    assert (tmp_path/'run'/'models'/'best.pt').exists() and (tmp_path/'run'/'visualizations'/'confusion_test.png').exists()
    r2 = xaimm('run', '--config', 'configs/tiny.yaml', '--out', str(tmp_path/'run'))
    assert r2.returncode == 0 and r2.stdout.count('skipped') == 2

def test_misspelt_key_is_one_paragraph_and_writes_nothing(tmp_path):
    r = xaimm('train', '--config', 'configs/tiny.yaml', '--set', 'train.epocs=2', '--out', str(tmp_path/'bad'))
    assert r.returncode == 2
    assert "unknown config key 'train.epocs'; did you mean 'epochs'?" in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'bad').exists()

def test_missing_config_file(tmp_path):
    r = xaimm('run', '--config', str(tmp_path/'nope.yaml'))
    assert r.returncode == 2 and 'config file not found' in r.stderr
