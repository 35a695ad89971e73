#!/bin/bash
# mpirun for flywheel: a stop request ends the job with flywheel's exit code (75: checkpointed, run the
# same command again to resume) whether it is SIGTERM, SIGINT (Ctrl-C) or SIGHUP.
#
#   jobs/mpirun.sh [mpirun options] FLYWHEEL_BINARY train|run ...
#   jobs/mpirun.sh --allow-run-as-root -n 2 build/flywheel train --shape configs/shapes/tiny-dense.ini
#
# Why a wrapper: Open MPI 4.1's mpirun forwards SIGUSR1 and SIGUSR2 to the ranks but takes SIGTERM,
# SIGINT and SIGHUP as "abort the job": it sends every rank SIGCONT, waits odls_base_sigkill_timeout
# (1 s), sends SIGTERM, waits 1 s more, sends SIGKILL, and exits 1 whatever the ranks exit with
# (measured; docs/operations.md). This script starts mpirun in a session of its own, so a terminal's
# Ctrl-C (or hang-up) reaches this script and not mpirun, turns each SIGTERM, SIGINT or SIGHUP into a
# SIGUSR1 that mpirun forwards to every rank (a second one stops the ranks at once: exit 130), and
# exits with mpirun's code, which is the ranks' code. Signal this script, not its process group.
# Every argument goes to mpirun unchanged; stdin is not forwarded (flywheel reads none).
set -u
(($#)) || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }

# A script's background job (`jobs/mpirun.sh ... &`) starts with SIGINT ignored, and bash cannot trap a
# signal ignored on entry: start again once with SIGINT at its default, so the trap holds. (A SIGHUP
# ignored on entry stays ignored: that is `nohup`.)
if [ -z "${FLYWHEEL_MPIRUN_SH_REEXEC:-}" ] && [ -n "$(trap -p INT)" ]; then
  FLYWHEEL_MPIRUN_SH_REEXEC=1 exec env --default-signal=INT bash "$0" "$@"
fi
unset FLYWHEEL_MPIRUN_SH_REEXEC

mpirun_pid=
forward() {
  echo "[mpirun.sh] $1: asking the ranks to checkpoint (SIGUSR1 through mpirun; a second signal stops them at once)" >&2
  [ -n "$mpirun_pid" ] && kill -USR1 "$mpirun_pid" 2>/dev/null
}
trap 'forward SIGINT' INT
trap 'forward SIGTERM' TERM
trap 'forward SIGHUP' HUP

# setsid: a session and process group of mpirun's own (a background child of a script is no group
# leader, so setsid execs mpirun in place and $! is mpirun's pid).
setsid mpirun "$@" </dev/null &
mpirun_pid=$!

# `wait` returns early when a trapped signal arrives: keep waiting until mpirun has really ended.
while :; do
  wait "$mpirun_pid"
  code=$?
  kill -0 "$mpirun_pid" 2>/dev/null || break
done

case $code in
  0) ;;
  75) echo "[mpirun.sh] exit 75: the ranks checkpointed after a stop request; run the same command again to resume" \
        "(Open MPI's banner says 'aborted' because the ranks exited non-zero on purpose)" >&2 ;;
  130) echo "[mpirun.sh] exit 130: stopped at once by a second signal; the last committed checkpoint is intact" >&2 ;;
  *) echo "[mpirun.sh] exit $code (docs/operations.md lists flywheel's exit codes)" >&2 ;;
esac
exit "$code"
