#!/usr/bin/env python3
"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells as ```python blocks, `#|` cells
skipped, image paths made relative to the repository root). Run after editing index.ipynb:  python tools/readme.py"""
import json, re
from pathlib import Path

root = Path(__file__).resolve().parents[1]
out = []
for c in json.loads((root/'nbs'/'index.ipynb').read_text())['cells']:
    src = ''.join(c['source']).strip()
    if not src or src.startswith('#|') and c['cell_type'] == 'code' and ('hide' in src.splitlines()[0] or 'export' in src.splitlines()[0]): continue
    if c['cell_type'] == 'markdown': out.append(re.sub(r'\]\(images/', '](nbs/images/', src))
    else:
        out.append('```python\n' + '\n'.join(l for l in src.splitlines() if not l.startswith('#|')) + '\n```')
        if 'show_synth(' in src: out.append('![SynthMM samples](nbs/images/synth_train.png)')
(root/'README.md').write_text('\n\n'.join(out) + '\n')
