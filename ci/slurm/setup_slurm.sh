#!/usr/bin/env bash
# Install and start a one-node Slurm cluster on this machine (Debian/Ubuntu,
# as root, no systemd): munged, slurmctld and slurmd on 127.0.0.1.
#
# Used by tests/test_slurm.py and usable by hand for trying the Slurm profile:
#   sudo ci/slurm/setup_slurm.sh            # install (if needed), configure, start
#   sudo ci/slurm/setup_slurm.sh --stop     # stop the three daemons
# Settings (environment): SLURM_CPUS (default: nproc), SLURM_MEM_MB (default:
# 80% of MemTotal), SLURM_PARTITION (default: debug), SLURM_GPUS (default: 2)
# and SLURM_GPU_TYPE (default: testgpu).
#
# GPUs: the node declares SLURM_GPUS generic resources `gpu:<type>` backed by
# plain files (no devices, no autodetection: gres.conf lists them with
# `AutoDetect=off`), so that `sbatch --gpus=1` is accepted and Slurm hands each
# job its own device index in CUDA_VISIBLE_DEVICES. Nothing behind them is a
# GPU: torch sees no CUDA and trains on the CPU.
# Exit status: 0 = Slurm is up (sinfo shows the node idle); 3 = cannot install
# (not root or no apt-get) - the caller should skip; anything else = failure.
set -euo pipefail

ETC=/etc/slurm
STATE=/var/lib/slurm
LOGDIR=/var/log/slurm
RUNDIR=/run/slurm

stop() {
    for pidfile in "$RUNDIR/slurmd.pid" "$RUNDIR/slurmctld.pid" /run/munge/munged.pid; do
        if [[ -s $pidfile ]]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
}

if [[ ${1:-} == --stop ]]; then
    stop
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "setup_slurm: must run as root (to install packages and start daemons)" >&2
    exit 3
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        echo "setup_slurm: Slurm is not installed and apt-get is not available" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd munge slurm-client >/dev/null
fi

node=$(hostname -s)
cpus=${SLURM_CPUS:-$(nproc)}
mem_total_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
mem_mb=${SLURM_MEM_MB:-$((mem_total_mb * 8 / 10))}
partition=${SLURM_PARTITION:-debug}
gpus=${SLURM_GPUS:-2}
gpu_type=${SLURM_GPU_TYPE:-testgpu}

# --- munge: a key, then the daemon as the munge user ---------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then
        mungekey --create --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "munged --force"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

# --- slurm.conf: one node, no accounting, no cgroups (works in containers) -----
mkdir -p "$ETC" "$STATE/slurmctld" "$STATE/slurmd" "$LOGDIR" "$RUNDIR"

# --- fake GPUs: files standing in for /dev/nvidia<i>, declared in gres.conf ------
node_gres=""
{
    echo "# Written by ci/slurm/setup_slurm.sh: ${gpus} fake GPUs (plain files, no autodetection)."
    echo "AutoDetect=off"
} > "$ETC/gres.conf"
if (( gpus > 0 )); then
    mkdir -p "$STATE/fake-gpus"
    # Slurm wants a character device: links to /dev/null (needs no mknod privilege)
    for ((i = 0; i < gpus; i++)); do ln -sfn /dev/null "$STATE/fake-gpus/nvidia$i"; done
    echo "NodeName=${node} Name=gpu Type=${gpu_type} File=$STATE/fake-gpus/nvidia[0-$((gpus - 1))]" >> "$ETC/gres.conf"
    node_gres=" Gres=gpu:${gpu_type}:${gpus}"
fi
cat > "$ETC/slurm.conf" <<CONF
# Written by ci/slurm/setup_slurm.sh: a one-node test cluster.
ClusterName=jointseg-ci
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb}${node_gres} State=UNKNOWN
PartitionName=${partition} Nodes=${node} Default=YES MaxTime=INFINITE State=UP
CONF

# --- daemons (restart so a changed slurm.conf takes effect) ---------------------
stop_slurm() {
    local pid
    for pidfile in "$RUNDIR/slurmd.pid" "$RUNDIR/slurmctld.pid"; do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
}
stop_slurm
slurmctld -c   # -c: clear old state (jobs from an earlier run)
slurmd

for _ in $(seq 60); do
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
        echo "setup_slurm: node ${node} idle (${cpus} CPUs, ${mem_mb} MB, ${gpus} GPUs gpu:${gpu_type}) in partition ${partition}"
        exit 0
    fi
    sleep 1
done
echo "setup_slurm: Slurm did not come up; sinfo says:" >&2
sinfo -N -l >&2 || true
tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
exit 1
