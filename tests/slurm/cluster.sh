# Sourced by the Slurm tests: a private one-node cluster (tools/slurm-local.sh) in $work/cluster, on
# two free ports (so tests of other checkouts on the same machine can run a cluster at the same time).
#   start_cluster SOURCE_DIR PYTHON     exports SLURM_CONF; stop_cluster SOURCE_DIR in the EXIT trap
start_cluster() {
  local ports
  ports=$("$2" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
  read -r FLYWHEEL_SLURMCTLD_PORT FLYWHEEL_SLURMD_PORT <<<"$ports"
  export FLYWHEEL_SLURMCTLD_PORT FLYWHEEL_SLURMD_PORT
  local exports
  exports=$(bash "$1/tools/slurm-local.sh" start "$work/cluster") || return 1
  eval "$exports"
}

stop_cluster() {
  [ -n "${SLURM_CONF:-}" ] && [ -n "${job:-}" ] && scancel --quiet "$job" 2>/dev/null
  bash "$1/tools/slurm-local.sh" stop "$work/cluster" 2>/dev/null
}

# wait_state JOB STATE SECONDS: until squeue shows STATE ("" = gone); fails the test on a timeout.
wait_state() {
  local deadline=$((SECONDS + $3))
  until [ "$(squeue -h -j "$1" -o %T 2>/dev/null)" = "$2" ]; do
    [ $SECONDS -lt $deadline ] ||
      fail "job $1 did not reach state '${2:-gone}' within $3 s (now $(squeue -h -j "$1" -o %T))"
    sleep 0.2
  done
}
