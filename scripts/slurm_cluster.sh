#!/usr/bin/env bash
# Single-node SLURM cluster on localhost for tests and CI.
#
#   bash scripts/slurm_cluster.sh start    # install if missing, start, wait until idle
#   bash scripts/slurm_cluster.sh stop     # cancel jobs, stop daemons by pid file
#   bash scripts/slurm_cluster.sh status   # sinfo; exit 0 if healthy, 1 otherwise
#
# Every subcommand is idempotent. Needs root (Debian 12). Nothing listens
# beyond loopback. All state, logs and pid files live under AEXP_SLURM_DIR.
set -euo pipefail

STATE_ROOT=${AEXP_SLURM_DIR:-/var/lib/aexp-slurm}
LOG_DIR=$STATE_ROOT/log
RUN_DIR=$STATE_ROOT/run
SLURM_CONF=/etc/slurm/slurm.conf # sbatch & co. read this path by default
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid # munged's own default pid file
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
NODE=localhost
START_TIMEOUT=${AEXP_SLURM_START_TIMEOUT:-60}
STOP_TIMEOUT=30

log() { echo "slurm_cluster: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# A killed daemon is a zombie until init reaps it, and its /proc entry (with
# the old comm) lingers meanwhile; count it as gone.
running() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# Pid from a pid file, printed only if that pid is alive AND is the expected
# program: a stale pid file may point at a recycled pid of someone else's
# process, and this machine is shared.
live_pid() {
    local file=$1 comm=$2 pid
    [[ -r $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    running "$pid" || return 1
    echo "$pid"
}

stop_pidfile() {
    local file=$1 comm=$2 pid i
    pid=$(live_pid "$file" "$comm") || {
        rm -f "$file"
        return 0
    }
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # slurmctld saves its state on TERM; give it time before forcing.
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        log "$comm (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        ! running "$pid" || die "$comm (pid $pid) will not die"
    fi
    rm -f "$file"
}

ensure_installed() {
    local missing=0 b
    # /usr/sbin may be off PATH for some callers; daemons are found there.
    export PATH=$PATH:/usr/sbin:/sbin
    for b in slurmctld slurmd sbatch munged; do
        command -v "$b" >/dev/null 2>&1 || missing=1
    done
    ((missing)) || return 0
    [[ $EUID -eq 0 ]] || die "installing SLURM needs root"
    log "installing slurmctld slurmd slurm-client munge via apt"
    local t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null
    apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge </dev/null >/dev/null
    log "installed in $((SECONDS - t0))s"
}

ensure_munge_key() {
    install -d -o munge -g munge -m 0700 /etc/munge
    if [[ ! -s $MUNGE_KEY ]]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    # munged refuses to start unless the key is private to the munge user.
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
    ensure_munge_key
    # /run is a tmpfs: it is gone after a reboot and apt does not recreate it.
    install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    if ! live_pid "$MUNGE_PID" munged >/dev/null; then
        log "starting munged"
        # munged daemonizes; detach stdio so a piped caller (CI) never hangs,
        # and close the lock fd, which munged would otherwise hold forever.
        runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.stdio" 2>&1 9>&- ||
            die "munged failed to start: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        munge_works && return 0
        sleep 0.1
    done
    die "munged is not answering: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
}

# slurm.conf for this machine; the node line comes from slurmd -C so the
# declared topology matches the hardware (a mismatch drains the node).
render_conf() {
    local hw cpus boards sockets cores threads mem
    hw=$(slurmd -C 2>/dev/null | head -n 1) || die "slurmd -C failed"
    get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
    cpus=$(get CPUs) boards=$(get Boards) sockets=$(get SocketsPerBoard)
    cores=$(get CoresPerSocket) threads=$(get ThreadsPerCore) mem=$(get RealMemory)
    [[ -n $cpus && -n $mem ]] || die "cannot parse slurmd -C output: $hw"
    # Declaring more memory than slurmd measures drains the node.
    mem=$((mem * 80 / 100))
    cat <<EOF
# Written by scripts/slurm_cluster.sh; edits are overwritten on start.
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
# Daemons listen on all interfaces by default; keep them on loopback.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# cgroup tracking needs a freezer cgroup namespace that containers lack and
# drains the node; linuxproc leaks background processes of jobs.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# No slurmdbd: a text job-completion log is enough for sacct -c.
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
# Short grace between SIGTERM and SIGKILL keeps time-limit tests fast.
KillWait=5
# Finished jobs stay visible to squeue/scontrol for 5 minutes.
MinJobAge=300
ReturnToService=2
JobRequeue=1
# A requeued job waits cred_expire+1 s (default 120) before it may start
# again; keep that short so requeue tests do not stall for minutes.
AuthInfo=cred_expire=10
# Jobs whose BeginTime passes (requeued ones) start on the next periodic
# scheduler pass, which defaults to every 60 s.
SchedulerParameters=sched_interval=5
StateSaveLocation=$STATE_ROOT/state
SlurmdSpoolDir=$STATE_ROOT/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1; }

daemons_alive() {
    live_pid "$MUNGE_PID" munged >/dev/null &&
        live_pid "$CTLD_PID" slurmctld >/dev/null &&
        live_pid "$SLURMD_PID" slurmd >/dev/null
}

# Healthy = all three daemons up and the node can run jobs. A trailing
# '*' (not responding), '~' or '#' (power saving) is not healthy.
healthy() {
    daemons_alive || return 1
    case $(node_state) in
    idle | mix | alloc | comp) return 0 ;;
    *) return 1 ;;
    esac
}

dump_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [[ -f $f ]] || continue
        echo "----- tail $f -----" >&2
        tail -n 20 "$f" >&2
    done
}

cmd_start() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    ensure_installed
    install -d -m 0755 "$STATE_ROOT" "$LOG_DIR" "$RUN_DIR" \
        "$STATE_ROOT/state" "$STATE_ROOT/spool" /etc/slurm

    local conf
    conf=$(render_conf)
    if [[ ! -f $SLURM_CONF ]] || [[ $(cat "$SLURM_CONF") != "$conf" ]]; then
        # Running daemons would keep the old config (e.g. after this script
        # changed); a full restart is simpler and surer than reconfigure.
        if live_pid "$CTLD_PID" slurmctld >/dev/null || live_pid "$SLURMD_PID" slurmd >/dev/null; then
            log "slurm.conf changed; restarting the cluster"
            cmd_stop
        fi
        printf '%s\n' "$conf" >"$SLURM_CONF.tmp"
        mv "$SLURM_CONF.tmp" "$SLURM_CONF"
    elif healthy; then
        log "already running"
        sinfo
        return 0
    fi

    start_munged

    local t0=$SECONDS
    if ! live_pid "$CTLD_PID" slurmctld >/dev/null; then
        log "starting slurmctld"
        slurmctld </dev/null >>"$LOG_DIR/slurmctld.stdio" 2>&1 9>&- || {
            dump_logs
            die "slurmctld failed to start"
        }
    fi
    if ! live_pid "$SLURMD_PID" slurmd >/dev/null; then
        log "starting slurmd"
        # The node is named localhost, not after the real hostname.
        slurmd -N "$NODE" </dev/null >>"$LOG_DIR/slurmd.stdio" 2>&1 9>&- || {
            dump_logs
            die "slurmd failed to start"
        }
    fi

    local state resumed=0
    while ((SECONDS - t0 < START_TIMEOUT)); do
        state=$(node_state || true)
        case $state in
        idle | mix | alloc)
            if daemons_alive; then
                log "cluster up: node $NODE $state after $((SECONDS - t0))s"
                sinfo
                return 0
            fi
            ;;
        drain* | drng* | down* | fail*)
            # Left over from an earlier run (e.g. a killed slurmd); the
            # config is sane, so put the node back into service.
            if ((resumed < 3)); then
                log "node is $state; resuming it"
                scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                resumed=$((resumed + 1))
            fi
            ;;
        esac
        daemons_alive || break
        sleep 1
    done
    dump_logs
    sinfo >&2 || true
    die "cluster not healthy after $((SECONDS - t0))s (node state: '${state:-?}'); see $LOG_DIR"
}

cmd_stop() {
    export PATH=$PATH:/usr/sbin:/sbin
    # Cancel jobs first: slurmstepd and job processes outlive slurmd and
    # have no pid file, so they could only be found by name otherwise.
    if live_pid "$CTLD_PID" slurmctld >/dev/null && command -v squeue >/dev/null; then
        local ids i
        ids=$(squeue -h -o %A 2>/dev/null || true)
        if [[ -n $ids ]]; then
            log "cancelling jobs: ${ids//$'\n'/ }"
            # shellcheck disable=SC2086
            scancel $ids 2>/dev/null || true
            for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
                [[ -z $(squeue -h -o %A 2>/dev/null || true) ]] && break
                sleep 0.25
            done
        fi
    fi
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    stop_pidfile "$MUNGE_PID" munged
}

cmd_status() {
    export PATH=$PATH:/usr/sbin:/sbin
    local ok=0 pid d
    for d in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
        if pid=$(live_pid "${d#*:}" "${d%%:*}"); then
            echo "${d%%:*}: running (pid $pid)"
        else
            echo "${d%%:*}: not running"
            ok=1
        fi
    done
    if command -v sinfo >/dev/null && live_pid "$CTLD_PID" slurmctld >/dev/null; then
        sinfo || ok=1
    fi
    healthy || ok=1
    return $ok
}

# Parallel callers (test workers, CI steps) must not race to start or stop
# the same daemons.
lock() {
    install -d -m 0755 "$STATE_ROOT"
    exec 9>"$STATE_ROOT/.lock"
    flock -w 120 9 || die "another slurm_cluster.sh holds $STATE_ROOT/.lock"
}

case ${1:-} in
start) lock && cmd_start ;;
stop) lock && cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 {start|stop|status}" >&2
    exit 2
    ;;
esac
