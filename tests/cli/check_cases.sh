# The check harness the flywheel-ckpt CLI tests share. Source it after setting $work (a scratch
# directory); every check counts into $cases, every failure into $failures.
#   run NAME EXIT_CODE CMD...  runs CMD, keeps its stdout and stderr in $work, checks its exit code
#   out_has ERE | err_has ERE | out_lacks ERE | absent PATH   checks on what the last run left
#   fail MESSAGE               counts a failure of check $name and shows the last run's output
#   finish                     prints the tally; exits 0 only when nothing failed
#   write_held_out FILE        four addition examples as {prompt, completion} JSONL (for `flywheel eval --data`)
#   py NAME ARGS...            runs "$python" ARGS as check NAME, showing its stdout indented (needs $python)
failures=0
cases=0

fail() {
  echo "FAIL $name: $*"
  [ -f "$work/stdout" ] && sed 's/^/    out: /' "$work/stdout" | head -30
  [ -f "$work/stderr" ] && sed 's/^/    err: /' "$work/stderr" | head -20
  failures=$((failures + 1))
}

run() {
  name=$1 want=$2
  shift 2
  cases=$((cases + 1))
  "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then fail "exit code $rc, expected $want"; return 1; fi
  echo "ok   $name"
}

out_has() { grep -qE -- "$1" "$work/stdout" || fail "stdout does not match /$1/"; }
err_has() { grep -qE -- "$1" "$work/stderr" || fail "stderr does not match /$1/"; }
out_lacks() { ! grep -qE -- "$1" "$work/stdout" || fail "stdout unexpectedly matches /$1/"; }
absent() { [ ! -e "$1" ] || fail "$1 exists"; }

py() {
  name=$1
  shift
  cases=$((cases + 1))
  if "$python" "$@" >"$work/stdout" 2>"$work/stderr"; then sed 's/^/     /' "$work/stdout"; else fail "python check failed"; fi
}

write_held_out() {
  printf '%s\n' '{"prompt": "3+4=", "completion": "7"}' '{"prompt": "12+7=", "completion": "19"}' \
    '{"prompt": "5+5=", "completion": "10"}' '{"prompt": "40+2=", "completion": "42"}' >"$1"
}

finish() {
  echo "$((cases - failures)) of $cases checks passed"
  [ "$failures" -eq 0 ]
  exit $?
}
