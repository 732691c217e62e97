#!/usr/bin/env bash
# The test command: sets up .venv if needed, checks notebooks and package are in sync, runs every notebook
# (nbdev-test) and the pytest suite, and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
source tools/venv.sh || { echo "0 passed, 1 failed"; exit 1; }
log="$(mktemp -d)"; fail=0

echo "== nbdev-export sync check"
tmp="$(mktemp -d)"; cp -r nbs pyproject.toml README.md xaimm_nb "$tmp"/
(cd "$tmp" && nbdev-export >/dev/null 2>&1) || { echo "nbdev-export failed"; fail=1; }
if ! diff -r -q -x __pycache__ "$tmp/xaimm_nb" xaimm_nb >"$log/sync" 2>&1; then
  echo "The package is out of sync with the notebooks; run nbdev-export and commit:"; cat "$log/sync"; fail=1
fi
sync_failed=$fail

echo "== notebooks (nbdev-test)"
nbdev-test --n-workers "${XAIMM_TEST_WORKERS:-2}" --do-print --timing 2>&1 | tee "$log/nb"
nb_started=$(grep -c '^Starting ' "$log/nb" || true)
nb_passed=$(grep -c '^- Completed ' "$log/nb" || true)
nb_failed=$((nb_started - nb_passed))

echo "== pytest tests/"
python -m pytest tests -q -p no:cacheprovider 2>&1 | tee "$log/py"; prc=${PIPESTATUS[0]}
read py_passed py_failed < <(python - "$log/py" <<'PY'
import re, sys
t = open(sys.argv[1]).read().splitlines()
last = [l for l in t if re.search(r'\d+ (passed|failed|error)|no tests ran', l)]
l = last[-1] if last else ''
g = lambda k: sum(int(n) for n in re.findall(r'(\d+) ' + k, l))
print(g('passed'), g('failed') + g('errors?'))
PY
)
if [ "$prc" -ne 0 ] && [ "$prc" -ne 5 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi

passed=$((nb_passed + py_passed)); failed=$((nb_failed + py_failed + sync_failed))
echo "notebooks: $nb_passed passed, $nb_failed failed; pytest: $py_passed passed, $py_failed failed; sync: $([ $sync_failed = 0 ] && echo ok || echo FAILED)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
