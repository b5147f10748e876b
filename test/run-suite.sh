#!/usr/bin/env bash
# Runs the whole tap suite and ends with one plain line "N passed, N failed" (and skipped).
# Exits non-zero when any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export NODE_ENV=test
out=$(mktemp)
if [[ $# -eq 0 ]]; then set -- test/unit test/interop test/e2e; fi
npx tap --reporter=tap "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$out" | tail -1)
# CI shows only the tail of the log: repeat each failure (its file, its name and the first
# lines of its diagnostic block) here so a failed run says what failed.
failures=$(awk '
  /^# Subtest: / { file = substr($0, 12) }
  /^not ok / { print "FAILED: " $0; n = 0; next }
  /^ +not ok / { print "FAILED in " file ":" $0; n = 16; next }
  n > 0 { print; n-- }
' "$out")
rm -f "$out"
if [[ -n "$failures" ]]; then printf '\n%s\n\n' "$failures"; fi
num() { sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary"; }
pass=$(num pass); fail=$(num fail); skip=$(num skip)
if [[ -z "$summary" ]]; then
  echo "tests: no summary from tap (exit $rc)"
  [[ $rc -eq 0 ]] && rc=1
else
  echo "tests: ${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
fi
exit "$rc"
