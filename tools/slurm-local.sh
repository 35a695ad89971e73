#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for tests and for trying Flywheel's job scripts on a workstation.
#
#   tools/slurm-local.sh start [DIR]   start munge, slurmctld and slurmd with state under DIR
#                                      (default /tmp/flywheel-slurm); prints `export SLURM_CONF=...`
#   tools/slurm-local.sh stop [DIR]    stop the daemons and remove DIR
#   tools/slurm-local.sh status [DIR]  sinfo / squeue
#
# Needs root and Debian's slurm-wlm + munge (installed here when missing). The node declares 16 CPUs
# (more than the machine has, via SlurmdParameters=config_overrides) and the partition oversubscribes,
# so multi-rank jobs start on a 2-core machine. Facts this relies on: ../shared/notes/slurm-local.md.
set -euo pipefail
cmd=${1:-}
dir=${2:-/tmp/flywheel-slurm}
conf="$dir/slurm.conf"

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
NodeName=$host CPUs=16 Boards=1 SocketsPerBoard=1 CoresPerSocket=16 ThreadsPerCore=1 RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
}

stop_daemons() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
}

case "$cmd" in
  start)
    [ "$(id -u)" -eq 0 ] || { echo "slurm-local: needs root" >&2; exit 2; }
    install_packages
    start_munge
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
      echo "slurm-local: the node did not come up; see $dir/log/" >&2; exit 1; }
    echo "export SLURM_CONF=$conf"
    ;;
  stop)
    stop_daemons
    rm -rf "$dir"
    ;;
  status)
    SLURM_CONF="$conf" sinfo && SLURM_CONF="$conf" squeue
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ "$cmd" = "--help" ] || [ "$cmd" = "-h" ] && exit 0
    exit 2
    ;;
esac
