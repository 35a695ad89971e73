#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for tests and for trying Flywheel's job scripts on a workstation.
#
#   tools/slurm-local.sh start [DIR]   a fresh cluster with its state under DIR (an earlier DIR is
#                                      removed); prints the `export SLURM_CONF=DIR/slurm.conf` line
#   tools/slurm-local.sh status [DIR]  sinfo / squeue of that cluster
#   tools/slurm-local.sh stop [DIR]    stop the daemons and remove DIR except DIR/log (kept, and named)
#
# DIR: the argument, else (status, stop) the directory of $SLURM_CONF when it is a cluster of this
# script, else /tmp/flywheel-slurm; every command says which it uses. Slurm commands (sbatch, squeue,
# scontrol) find the cluster only through SLURM_CONF: without it they look for the controller in DNS
# SRV records and fail with "DNS SRV lookup failed" / "Could not establish a configuration source".
# Use `eval "$(tools/slurm-local.sh start)"`, or export the printed line.
#
# Needs root and Debian's slurm-wlm + munge (installed here when missing; verified with slurm-wlm
# 22.05, Open MPI 4.1 and PMIx 4.2 on Debian 12). What the configuration relies on:
# - the node declares 16 CPUs, more than the machine has (SlurmdParameters=config_overrides), and the
#   partition oversubscribes (OverSubscribe=FORCE:8): with the real core count `sbatch -n 4` stays
#   pending on a 2-core machine;
# - two partitions on the node: `debug` (the default) and `urgent` (PriorityTier 2, no sharing):
#   `sbatch -p urgent --exclusive` preempts debug jobs, which Slurm requeues (PreemptType=
#   preempt/partition_prio, PreemptMode=REQUEUE), as a site's preemption does;
# - MpiDefault=pmix, so `srun --mpi=pmix` starts Open MPI ranks; proctrack/pgid, task/none and no
#   accounting keep the daemons free of cgroups and databases; ports FLYWHEEL_SLURMCTLD_PORT and
#   FLYWHEEL_SLURMD_PORT (default 16817, 16818) keep clear of a system Slurm;
# - munged runs as the munge user (`munged --force`: it warns about its log file's owner);
# - a requeued job waits about 2 minutes for its BeginTime; `scontrol update JobId=ID StartTime=now`
#   starts it at once, once it is pending (before that it has no effect);
# - a heterogeneous job (`#SBATCH hetjob`) never starts here: the scheduler wants its components on
#   different nodes. Jobs put trainers and replicas in one job step instead.
set -euo pipefail
cmd=${1:-}
marker="# written by tools/slurm-local.sh"
ours() { [ -f "$1/slurm.conf" ] && grep -qxF "$marker" "$1/slurm.conf"; }
if [ -n "${2:-}" ]; then
  dir=$2 from="given"
elif [ "$cmd" != start ] && [ -n "${SLURM_CONF:-}" ] && ours "$(dirname "$SLURM_CONF")"; then
  dir=$(dirname "$SLURM_CONF") from="from SLURM_CONF"
else
  dir=/tmp/flywheel-slurm from="the default"
fi
conf="$dir/slurm.conf"
say() { echo "slurm-local: $*" >&2; }

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  pgrep -x munged >/dev/null || sudo -u munge munged --force 2>/dev/null || munged --force
  munge -n | unmunge >/dev/null
}

write_conf() {
  local host
  host=$(hostname -s)
  mkdir -p "$dir"/{state,spool,log}
  cat >"$conf" <<CONF
$marker
ClusterName=flywheel
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=pmix
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPort=${FLYWHEEL_SLURMCTLD_PORT:-16817}
SlurmdPort=${FLYWHEEL_SLURMD_PORT:-16818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$host CPUs=16 Boards=1 SocketsPerBoard=1 CoresPerSocket=16 ThreadsPerCore=1 RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8 PriorityTier=1
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=2
CONF
}

stop_daemons() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
}

# Slurm commands in the caller's shell reach this cluster only through SLURM_CONF.
check_env() {
  [ "${SLURM_CONF:-}" = "$conf" ] && return
  say "SLURM_CONF is '${SLURM_CONF:-}' in this shell, not $conf: sbatch, squeue and scontrol here miss this" \
      "cluster (unset, they fail with 'DNS SRV lookup failed'); run: export SLURM_CONF=$conf"
}

case "$cmd" in
  start)
    [ "$(id -u)" -eq 0 ] || { say "needs root"; exit 2; }
    install_packages
    start_munge
    [ ! -e "$dir" ] || [ -z "$(ls -A "$dir")" ] || ours "$dir" || {
      say "$dir holds something other than a cluster of this script: not removing it; give another DIR"; exit 2; }
    stop_daemons
    rm -rf "$dir"
    write_conf
    SLURM_CONF="$conf" slurmctld
    SLURM_CONF="$conf" slurmd
    for _ in $(seq 1 60); do
      SLURM_CONF="$conf" sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
      sleep 0.5
    done
    SLURM_CONF="$conf" sinfo -h -o %t | grep -qE '^(idle|mix|alloc)' || {
      say "the node did not come up; see $dir/log/"
      exit 1
    }
    say "cluster up in $dir ($from); Slurm commands need SLURM_CONF: eval this output, or export the line below"
    echo "export SLURM_CONF=$conf"
    ;;
  stop)
    ours "$dir" || { say "no cluster in $dir ($from)"; exit 1; }
    stop_daemons
    find "$dir" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
    say "stopped the cluster in $dir ($from); its logs are kept in $dir/log"
    ;;
  status)
    ours "$dir" || { say "no cluster in $dir ($from)"; exit 1; }
    say "cluster in $dir ($from)"
    check_env
    SLURM_CONF="$conf" sinfo && SLURM_CONF="$conf" squeue
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    [ "$cmd" = "--help" ] || [ "$cmd" = "-h" ] && exit 0
    exit 2
    ;;
esac
