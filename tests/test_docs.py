"The docs site, checked offline: Quarto cannot be installed here, so we run nbdev's own notebook processing."
import json, os, subprocess, sys
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

def test_processed_docs_link_api_names(tmp_path):
    "nbdev's docs processing turns backticked API names into links (`strip_libs` names the nbdev entry point, xaimm_nb)."
    dst = tmp_path/'csv_data.ipynb'
    code = ("import sys; from pathlib import Path; from nbdev.serve_drv import main; "
            "from nbdev.processors import FilterDefaults; "
            "main((Path('nbs/tutorials/csv_data.ipynb'), Path(sys.argv[1]), FilterDefaults))")
    r = subprocess.run([sys.executable, '-c', code, str(dst)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-3000:]
    md = '\n'.join(''.join(c['source']) for c in json.loads(dst.read_text())['cells'] if c['cell_type'] == 'markdown')
    assert '[`CSVSource`](https://xaimm.github.io/xaimm_nb/' in md, md[:2000]
