"The docs site, checked offline: Quarto cannot be installed here, so we run nbdev's own notebook processing."
import os, subprocess, sys
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]

def test_quarto_yml_valid():
    q = yaml.safe_load((ROOT/'nbs'/'_quarto.yml').read_text())
    assert q['project']['type'] == 'website' and 'nbdev.yml' in q['metadata-files']
    n = yaml.safe_load((ROOT/'nbs'/'nbdev.yml').read_text())
    assert n['project']['output-dir'] == '_docs' and n['website']['title'] == 'xaimm_nb'
    assert (ROOT/'nbs'/'styles.css').exists()

def test_proc_nbs_and_sidebar(tmp_path):
    "nbdev's docs pre-processing (show_doc, export and import cells) runs on every notebook without error."
    code = ("from nbdev.serve import proc_nbs; from nbdev.quarto import nbdev_sidebar; "
            "proc_nbs(); nbdev_sidebar.__wrapped__(force=True)")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
    procd = {p.name for p in (ROOT/'_proc').rglob('*.ipynb')}
    assert set(nbs) <= procd, set(nbs) - procd
    side = yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())
    assert side['website']['sidebar']['contents']
