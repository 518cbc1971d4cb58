#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1, from Debian's packages (slurmctld, slurmd, munge), to try
# `rltrain -m hydra/launcher=submitit_slurm ...` (or the slurm_gpu preset) on one machine.
#
#   sudo scripts/slurm_local.sh start    # install if missing, configure, start; then `sinfo` works
#   sudo scripts/slurm_local.sh status   # sinfo + squeue
#   sudo scripts/slurm_local.sh stop     # stop the three daemons this script started
#
# It needs root (apt-get, daemons, /etc/slurm). Everything listens on 127.0.0.1 only. The daemons'
# pid files and logs live under $SLURM_LOCAL_DIR (default /tmp/rltrain-slurm); `stop` ends exactly
# the processes whose pids are there. The partition is "debug" with this machine's CPUs and memory;
# cores are consumable (select/cons_tres, CR_Core), so single-CPU jobs run side by side.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/tmp/rltrain-slurm}
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm_local.sh: run as root (sudo)" >&2
    exit 1
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge
}

write_config() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p /etc/slurm "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"
  chmod 755 "$STATE" "$STATE/spool" "$STATE/log"  # slurmctld runs as the slurm user
  chown -R slurm:slurm "$STATE/spool/ctld"
  # The node name must be this host's short name (slurmd checks it); its address is loopback.
  cat > "$CONF" <<EOF
# written by rltrain scripts/slurm_local.sh: one node on 127.0.0.1
ClusterName=rltrain-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldAddr=127.0.0.1
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups in a container: track job processes by parent pid, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if [ -f "$STATE/munged.pid" ] && kill -0 "$(cat "$STATE/munged.pid")" 2>/dev/null; then
    return
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  # munged writes its own pid file (it forks); the state dir must be writable for the munge user
  chown munge:munge "$STATE"
  runuser -u munge -- munged --pid-file="$STATE/munged.pid" --log-file="$STATE/munged.log" \
    </dev/null >/dev/null 2>&1
  chown root:root "$STATE"
}

start() {
  need_root
  install_packages
  mkdir -p "$STATE"
  write_config
  start_munge
  if ! { [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; }; then
    # daemons must not keep the caller's stdout/stderr open (a caller reading them would wait)
    slurmctld -f "$CONF" </dev/null >/dev/null 2>&1
  fi
  if ! { [ -f "$STATE/slurmd.pid" ] && kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null; }; then
    slurmd -f "$CONF" </dev/null >/dev/null 2>&1
  fi
  for _ in $(seq 1 30); do
    if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
      sinfo
      return
    fi
    sleep 1
  done
  echo "slurm_local.sh: the node did not become idle; see $STATE/log/:" >&2
  tail -n 5 "$STATE"/log/*.log >&2 || true
  stop >&2
  exit 1
}

stop() {
  need_root
  for name in slurmd slurmctld munged; do
    local pidfile="$STATE/$name.pid"
    if [ -f "$pidfile" ]; then
      local pid
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      fi
      rm -f "$pidfile"
    fi
  done
  echo "stopped the SLURM daemons started from $STATE"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
