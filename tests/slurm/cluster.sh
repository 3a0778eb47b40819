#!/usr/bin/env bash
# A real single-node SLURM cluster on loopback, for tests/test_slurm.py and for trying profiles/slurm by hand.
#
#   tests/slurm/cluster.sh start    install (only if missing) and start munge, slurmctld, slurmd; wait for the node
#   tests/slurm/cluster.sh stop     stop exactly the daemons this script started (by their pid files)
#   tests/slurm/cluster.sh status   print sinfo
#
# The recipe and its traps: Debian's slurm-wlm 22.05 + munge, no systemd or cgroups (proctrack/linuxproc,
# task/none), fake GPUs as gres on character devices (/dev/null, /dev/zero), JobCompType=jobcomp/filetxt
# so that SLURM's own records list every job. Idempotent: `start` on a running cluster only checks it.
# Exit status 77 means "cannot run here" (not root, no apt-get): the reason is on stderr, tests skip on it.
#
# Environment: LIQUIDSCALE_SLURM_DIR (scratch folder; state, logs, pid files, job records),
# LIQUIDSCALE_SLURM_PARTITION (default "debug"), LIQUIDSCALE_SLURM_GPUS (fake GPUs on the node, default 2).
set -euo pipefail

DIR=${LIQUIDSCALE_SLURM_DIR:-/tmp/liquidscale-slurm}
PARTITION=${LIQUIDSCALE_SLURM_PARTITION:-debug}
GPUS=${LIQUIDSCALE_SLURM_GPUS:-2}
CONF_DIR=/etc/slurm
HOST=$(hostname -s)
PIDS=$DIR/pids            # one file per daemon this script started; `stop` touches nothing else
JOBCOMP=$DIR/log/jobcomp.txt
GPU_DEVICES=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty)

cannot() { echo "cluster.sh: cannot start a SLURM cluster here: $*" >&2; exit 77; }
say() { echo "cluster.sh: $*" >&2; }

alive() {  # alive NAME: the daemon NAME this script started is running
    local file=$PIDS/$1.pid
    [[ -s $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s
    local seconds=$1 what=$2; shift 2
    local tries=$((seconds * 5))
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        ((tries > 0)) || { say "timed out waiting for $what"; return 1; }
        sleep 0.2
    done
}

install_packages() {
    local missing=()
    for tool in munged slurmctld slurmd sbatch; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || cannot "${missing[*]} missing and apt-get is not available"
    say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    apt-get update -qq >&2 || cannot "apt-get update failed (no package mirror?)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >&2 || cannot "apt-get install of the slurm packages failed"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi  # a munged is already serving
    if [[ ! -s /etc/munge/munge.key ]]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- munged --force --pid-file=/run/munge/munged.pid
    wait_for 10 "munge" bash -c 'munge -n | unmunge'
    cp /run/munge/munged.pid "$PIDS/munged.pid"
}

cpu_count() { nproc --all; }
memory_mb() { awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo; }

write_config() {
    local gres_node="" gres_types=""
    if ((GPUS > 0)); then
        ((GPUS <= ${#GPU_DEVICES[@]})) || cannot "LIQUIDSCALE_SLURM_GPUS=$GPUS: at most ${#GPU_DEVICES[@]} fake GPUs"
        gres_node="Gres=gpu:$GPUS"
        gres_types="GresTypes=gpu"
    fi
    install -d -m 0755 "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf.new" <<EOF
# Written by liquidscale tests/slurm/cluster.sh: a single-node test cluster on loopback.
ClusterName=liquidscale
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$gres_types
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(cpu_count) RealMemory=$(memory_mb) $gres_node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
    if ((GPUS > 0)); then
        local files
        files=$(IFS=,; echo "${GPU_DEVICES[*]:0:$GPUS}")
        printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s\n' "$HOST" "$files" >"$CONF_DIR/gres.conf"
    else
        rm -f "$CONF_DIR/gres.conf"
    fi
}

record_pid() {  # record_pid NAME: once the daemon NAME has daemonised, remember its pid for `stop`
    local file=$DIR/run/$1.pid
    wait_for 10 "$1 to write $file" test -s "$file"
    sleep 0.3  # the pid file is rewritten after the fork
    if ! kill -0 "$(cat "$file")" 2>/dev/null; then
        tail -5 "$DIR/log/$1.log" >&2
        say "$1 exited at start (log: $DIR/log/$1.log)"
        exit 1
    fi
    cp "$file" "$PIDS/$1.pid"
}

node_state() { timeout 3 sinfo -h -n "$HOST" -o %t 2>/dev/null; }
node_idle() { [[ $(node_state) == idle ]]; }

resume_if_drained() {
    case $(node_state) in
        drain* | drng | down* | inval*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
}

start() {
    [[ $(id -u) == 0 ]] || cannot "not root (slurmd and munged need root to start)"
    if alive slurmctld && alive slurmd && node_idle; then say "already running"; return 0; fi
    install_packages
    install -d -m 0755 "$DIR" "$PIDS"
    install -d -o slurm -g slurm -m 0755 "$DIR/state" "$DIR/log" "$DIR/run"
    install -d -m 0755 "$DIR/spool"
    alive munged || start_munge
    write_config
    if ! alive slurmctld; then
        slurmctld -i  # -i: ignore state left by an earlier cluster in $DIR/state
        record_pid slurmctld
    fi
    if ! alive slurmd; then
        slurmd
        record_pid slurmd
    fi
    wait_for 10 "slurmctld to answer" timeout 3 sinfo
    resume_if_drained
    wait_for 20 "node $HOST to be idle" node_idle || { sinfo -N -l >&2; tail -20 "$DIR/log/slurmctld.log" >&2; exit 1; }
    say "cluster up: node $HOST, partition $PARTITION, $(cpu_count) CPUs, $GPUS fake GPUs, job records in $JOBCOMP"
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        alive "$name" || { rm -f "$PIDS/$name.pid"; continue; }
        pid=$(cat "$PIDS/$name.pid")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$PIDS/$name.pid"
        say "stopped $name ($pid)"
    done
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) sinfo -N -l ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
