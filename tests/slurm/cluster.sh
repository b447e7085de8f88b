#!/usr/bin/env bash
# Private, throw-away Slurm cluster on this one machine, for tests.
#
#   tests/slurm/cluster.sh start            start munged + slurmctld + slurmd q1 + slurmd q2
#   tests/slurm/cluster.sh stop [--clean]   stop everything we started (by pid); --clean removes the state folder
#   tests/slurm/cluster.sh status           daemon pids and `sinfo -N`
#   tests/slurm/cluster.sh stop-node NODE   simulate a node crash: SIGKILL that slurmd + its steps/jobs
#   tests/slurm/cluster.sh start-node NODE  restart the slurmd of NODE
#   tests/slurm/cluster.sh env [DIR]        print `export SLURM_CONF=...` for a running cluster
#
# Environment:
#   QMETER_SLURM_DIR        state folder (default /tmp/qmeter-slurm-$(id -u))
#   QMETER_SLURM_PORT_BASE  first port tried (default 16817); ctld=base, q1=base+1, q2=base+2
#   QMETER_SLURM_TIMEOUT    seconds `start`/`start-node` wait for nodes (default 60)
#   QMETER_SLURM_SLURMD_TIMEOUT  SlurmdTimeout in slurm.conf (default 5): a killed node is DOWN ~3x this later
#
# Nothing outside the state folder is written; nothing is killed by name.
set -euo pipefail

PROG=$(basename "$0")
NODES=(q1 q2)
STATE=${QMETER_SLURM_DIR:-/tmp/qmeter-slurm-$(id -u)}
PORT_BASE=${QMETER_SLURM_PORT_BASE:-16817}
WAIT_S=${QMETER_SLURM_TIMEOUT:-60}
GRACE_S=5
SLURMD_TIMEOUT=${QMETER_SLURM_SLURMD_TIMEOUT:-5}

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

usage() {
    cat >&2 <<EOF
usage: $PROG start|stop [--clean]|status|stop-node NODE|start-node NODE|env [DIR]
  state folder: \$QMETER_SLURM_DIR (default /tmp/qmeter-slurm-\$(id -u))
  ports:        \$QMETER_SLURM_PORT_BASE (default 16817): slurmctld=base, q1=base+1, q2=base+2
EOF
    exit 2
}

set_paths() {
    STATE=$(realpath -m -- "$STATE")
    CONF=$STATE/slurm.conf
    MUNGE_DIR=$STATE/munge
    MUNGE_KEY=$MUNGE_DIR/munge.key
    MUNGE_SOCK=$MUNGE_DIR/munge.socket
    MUNGE_PID=$MUNGE_DIR/munged.pid
    MUNGE_LOG=$STATE/log/munged.log
    CTLD_PID=$STATE/run/slurmctld.pid
    CTLD_LOG=$STATE/log/slurmctld.log
}
slurmd_pidfile() { echo "$STATE/run/slurmd-$1.pid"; }
slurmd_logfile() { echo "$STATE/log/slurmd-$1.log"; }
slurmd_spool() { echo "$STATE/spool/slurmd-$1"; }

# ---------------------------------------------------------------- processes

# pid from a pid file, only if that process is alive AND runs the expected program
# (guards against a recycled pid). Prints nothing otherwise.
live_pid() { # pidfile comm
    local f=$1 comm=$2 pid
    [[ -s $f ]] || return 0
    pid=$(tr -dc '0-9' <"$f" 2>/dev/null || true)
    [[ -n $pid && -d /proc/$pid ]] || return 0
    [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) == "$comm" ]] || return 0
    [[ $(proc_state "$pid") == Z ]] && return 0
    echo "$pid"
}
proc_state() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; echo "${s%% *}"; }
munged_pid() { live_pid "$MUNGE_PID" munged; }
ctld_pid() { live_pid "$CTLD_PID" slurmctld; }
slurmd_pid() { live_pid "$(slurmd_pidfile "$1")" slurmd; }

# "pid ppid" for every process (comm may contain spaces and parens: parse after the last ')').
ps_table() {
    local f s rest
    for f in /proc/[0-9]*/stat; do
        s=$(cat "$f" 2>/dev/null) || continue
        rest=${s##*) }
        set -- $rest
        echo "${f//[!0-9]/} $2"
    done
}

# All descendants of the given pids (walking the ppid chains), excluding the roots.
descendants() {
    [[ $# -gt 0 ]] || return 0
    ps_table | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
        { kids[$2] = kids[$2] " " $1 }
        END {
            for (i = 1; i <= n; i++) queue[i] = r[i]
            head = 1; tail = n
            while (head <= tail) {
                p = queue[head++]
                m = split(kids[p], k, " ")
                for (j = 1; j <= m; j++) if (!(k[j] in seen) && !(k[j] in want)) {
                    seen[k[j]] = 1; queue[++tail] = k[j]; print k[j]
                }
            }
        }'
}

# slurmstepd processes belonging to NODE of this cluster. slurmd double-forks slurmstepd, so
# the stepd is re-parented to init and is NOT a descendant of slurmd; we recognise it by its
# open files: the node's log file or its unix sockets in the node's spool dir.
stepd_pids() { # node
    local node=$1 spool logf p fd tgt inodes=" "
    spool=$(slurmd_spool "$node"); logf=$(slurmd_logfile "$node")
    # socket inodes bound to paths inside the node's spool dir
    if [[ -r /proc/net/unix ]]; then
        inodes+=$(awk -v d="$spool/" 'index($8, d) == 1 { printf "%s ", $7 }' /proc/net/unix)
    fi
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null || true) == slurmstepd ]] || continue
        for fd in "$p"/fd/*; do
            tgt=$(readlink "$fd" 2>/dev/null) || continue
            if [[ $tgt == "$logf" || $tgt == "$spool"/* ]] ||
               [[ $tgt == socket:\[*\] && $inodes == *" ${tgt//[!0-9]/} "* ]]; then
                echo "${p#/proc/}"; break
            fi
        done
    done
}

# Job processes of NODE that escaped the ppid tree (e.g. daemonised by the job): their
# environment names this cluster's slurm.conf and the node.
job_env_pids() { # node
    local node=$1 p
    for p in /proc/[0-9]*; do
        [[ $(tr '\0' '\n' 2>/dev/null <"$p/environ" |
             grep -cxF -e "SLURMD_NODENAME=$node" -e "SLURM_CONF=$CONF") == 2 ]] 2>/dev/null &&
            echo "${p#/proc/}"
        true
    done
}

# Every pid that belongs to NODE: slurmd, its stepds, and all their descendants.
node_pids() { # node
    local node=$1 roots
    roots=$( { slurmd_pid "$node"; stepd_pids "$node"; job_env_pids "$node"; } | sort -un)
    [[ -n $roots ]] || return 0
    { echo "$roots"; descendants $roots; } | sort -un | grep -vx "$$" || true
}

alive_of() { local p s; for p in "$@"; do s=$(proc_state "$p"); [[ -n $s && $s != Z ]] && echo "$p"; done; return 0; }

# SIGTERM the pids, wait up to GRACE_S, then SIGKILL survivors (re-collected by the callback).
terminate() { # collector-function...
    local pids left i
    pids=$("$@" | sort -un | tr '\n' ' ')
    [[ -n ${pids// } ]] || return 0
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < GRACE_S * 10; i++)); do
        left=$(alive_of $pids)
        [[ -n $left ]] || return 0
        sleep 0.1
    done
    left=$( { alive_of $pids; "$@"; } | sort -un | tr '\n' ' ')
    [[ -n ${left// } ]] || return 0
    log "SIGKILL after ${GRACE_S}s grace: $left"
    kill -KILL $left 2>/dev/null || true
    sleep 0.2
}

# ---------------------------------------------------------------- config

port_busy() { # port
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Hltn "( sport = :$1 )" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

pick_ports() {
    local base=$PORT_BASE try p busy
    for ((try = 0; try < 50; try++)); do
        busy=
        for ((p = base; p < base + 1 + ${#NODES[@]}; p++)); do
            if port_busy "$p"; then busy=$p; break; fi
        done
        if [[ -z $busy ]]; then
            [[ $base == "$PORT_BASE" ]] || log "port $PORT_BASE..$((PORT_BASE + ${#NODES[@]})) busy; using base $base"
            PORT_BASE=$base
            return 0
        fi
        base=$((base + 10))
    done
    die "no free port range found starting at QMETER_SLURM_PORT_BASE=${QMETER_SLURM_PORT_BASE:-16817} (tried 50 bases, step 10)"
}

write_conf() {
    local host i node
    host=$(hostname -s)
    mkdir -p "$STATE"/{log,run,ctld,spool,munge}
    for node in "${NODES[@]}"; do mkdir -p "$(slurmd_spool "$node")"; done
    cat >"$CONF.tmp" <<EOF
# Generated by tests/slurm/cluster.sh -- private test cluster; do not edit.
ClusterName=qmeter
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT_BASE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again after this many seconds (default 120).
AuthInfo=socket=$MUNGE_SOCK,cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmctldPidFile=$CTLD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmctldDebug=info
SlurmdSpoolDir=$STATE/spool/slurmd-%n
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmdDebug=info
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1,sched_min_interval=0
ReturnToService=2
JobRequeue=0
MinJobAge=3600
MaxJobCount=100000
KillWait=2
SlurmdTimeout=$SLURMD_TIMEOUT
SlurmctldTimeout=10
MessageTimeout=5
TCPTimeout=2
InactiveLimit=0
Waittime=0
HealthCheckInterval=0
NodeName=DEFAULT CPUs=2 RealMemory=1000 State=UNKNOWN
EOF
    i=1
    for node in "${NODES[@]}"; do
        echo "NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT_BASE + i))" >>"$CONF.tmp"
        i=$((i + 1))
    done
    cat >>"$CONF.tmp" <<EOF
PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP
PartitionName=solo Nodes=${NODES[-1]} MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

# ---------------------------------------------------------------- daemons

wait_pidfile() { # what pid-function [args]
    local i pid; shift   # $1: what we wait for (for readers)
    for ((i = 0; i < 100; i++)); do
        pid=$("$@")
        [[ -n $pid ]] && { echo "$pid"; return 0; }
        sleep 0.1
    done
    return 1
}

start_munged() {
    [[ -n $(munged_pid) ]] && return 0
    command -v munged >/dev/null || die "munged not found (apt-get install -y munge)"
    if [[ ! -s $MUNGE_KEY ]]; then
        rm -f "$MUNGE_KEY"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" >/dev/null
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chmod 0400 "$MUNGE_KEY"
    chmod 0755 "$MUNGE_DIR"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$MUNGE_PID"
    setsid munged --force --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" \
        --pid-file="$MUNGE_PID" --log-file="$MUNGE_LOG" --seed-file="$MUNGE_DIR/munged.seed" \
        </dev/null >>"$STATE/log/launch.log" 2>&1 9>&- ||
        fail "munged failed to start"
    wait_pidfile munged munged_pid >/dev/null || fail "munged did not write $MUNGE_PID"
    local i
    for ((i = 0; i < 50; i++)); do [[ -S $MUNGE_SOCK ]] && break; sleep 0.1; done
    [[ -S $MUNGE_SOCK ]] || fail "munged socket $MUNGE_SOCK did not appear"
    log "munged pid $(munged_pid)"
}

start_ctld() {
    [[ -n $(ctld_pid) ]] && return 0
    setsid slurmctld -f "$CONF" </dev/null >>"$STATE/log/launch.log" 2>&1 9>&- ||
        fail "slurmctld failed to start"
    wait_pidfile slurmctld ctld_pid >/dev/null || fail "slurmctld did not start (no live pid in $CTLD_PID)"
    # wait until it answers
    local i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q 'UP' && break
        [[ -n $(ctld_pid) ]] || fail "slurmctld exited"
        sleep 0.5
    done
    SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q 'UP' || fail "slurmctld does not answer scontrol ping"
    log "slurmctld pid $(ctld_pid) port $PORT_BASE"
}

start_slurmd() { # node
    local node=$1
    [[ -n $(slurmd_pid "$node") ]] && return 0
    mkdir -p "$(slurmd_spool "$node")"
    rm -f "$(slurmd_pidfile "$node")"
    date +%s >"$STATE/run/slurmd-$node.launched"
    setsid slurmd -f "$CONF" -N "$node" </dev/null >>"$STATE/log/launch.log" 2>&1 9>&- ||
        fail "slurmd $node failed to start"
    wait_pidfile "slurmd $node" slurmd_pid "$node" >/dev/null ||
        fail "slurmd $node did not start (no live pid in $(slurmd_pidfile "$node"))"
    log "slurmd $node pid $(slurmd_pid "$node") port $(conf_port "$node")"
}

conf_port() { # node -> its Port= from slurm.conf
    sed -n "s/^NodeName=$1 .*Port=\([0-9]*\).*/\1/p" "$CONF"
}
conf_ctld_port() { sed -n 's/^SlurmctldPort=//p' "$CONF"; }

node_state() { # node -> e.g. idle, mixed, down*, (empty if unknown)
    SLURM_CONF=$CONF sinfo -h -N -n "$1" -o '%t' 2>/dev/null | head -n1 | tr -d ' '
}

# Node is usable: sinfo says idle/mix/alloc (no '*', drain, down) AND the controller has seen
# a registration from the slurmd we launched (SlurmdStartTime >= launch time), so a state
# recovered from an earlier run cannot fool us.
node_ready() { # node
    local n=$1 st launched started
    st=$(node_state "$n")
    [[ $st == idle || $st == mix || $st == alloc ]] || return 1
    launched=$(cat "$STATE/run/slurmd-$n.launched" 2>/dev/null || echo 0)
    started=$(SLURM_CONF=$CONF scontrol show node -o "$n" 2>/dev/null |
              sed -n 's/.* SlurmdStartTime=\([^ ]*\).*/\1/p')
    started=$(date -d "$started" +%s 2>/dev/null || echo 0)
    ((started + 1 >= launched))
}

wait_nodes_idle() { # nodes...
    local deadline=$((SECONDS + WAIT_S)) n ok
    while ((SECONDS < deadline)); do
        ok=1
        for n in "$@"; do
            node_ready "$n" || { ok=0; break; }
        done
        ((ok)) && return 0
        sleep 0.5
    done
    return 1
}

tails() {
    local f
    for f in "$STATE/log/launch.log" "$MUNGE_LOG" "$CTLD_LOG" "$STATE"/log/slurmd-*.log; do
        [[ -s $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 25 "$f" >&2
    done
    if [[ -s $CONF ]]; then
        echo "----- sinfo -N" >&2
        SLURM_CONF=$CONF timeout 10 sinfo -N 2>&1 >&2 || true
    fi
}
STARTING=0
fail() {
    echo "$PROG: error: $*" >&2
    tails
    if ((STARTING)); then
        STARTING=0
        log "start failed: stopping what runs (logs kept in $STATE/log)"
        cmd_stop || true
    fi
    exit 1
}

# serialise start/stop/start-node on one state folder (fd 9 is closed for the daemons)
take_lock() {
    exec 9>"$STATE/.lock"
    flock -w 120 9 || die "another $PROG holds $STATE/.lock for 120s"
}

print_env() { echo "export SLURM_CONF=$CONF"; }

# ---------------------------------------------------------------- commands

cmd_start() {
    local t0=$SECONDS node any=
    for c in slurmctld slurmd sinfo scontrol; do
        command -v "$c" >/dev/null || die "$c not found (apt-get install -y slurmctld slurmd slurm-client munge)"
    done
    (( ${#STATE} <= 80 )) || die "QMETER_SLURM_DIR too long (${#STATE} chars > 80): unix socket paths inside it would overflow"
    mkdir -p "$STATE"
    take_lock
    STARTING=1
    [[ -n $(munged_pid)$(ctld_pid) ]] && any=1
    for node in "${NODES[@]}"; do [[ -n $(slurmd_pid "$node") ]] && any=1; done
    if [[ -n $any && -s $CONF ]]; then
        PORT_BASE=$(conf_ctld_port)   # something runs: keep its config and ports
    else
        pick_ports
        write_conf
        : >"$STATE/log/launch.log"
    fi
    start_munged
    start_ctld
    for node in "${NODES[@]}"; do start_slurmd "$node"; done
    wait_nodes_idle "${NODES[@]}" || fail "nodes ${NODES[*]} not idle after ${WAIT_S}s"
    STARTING=0
    log "cluster up in $((SECONDS - t0))s (state $STATE)"
    SLURM_CONF=$CONF sinfo -N >&2
    print_env
}

all_cluster_pids() {
    local node
    for node in "${NODES[@]}"; do node_pids "$node"; done
    ctld_pid
    munged_pid
}

cmd_stop() {
    local clean=0
    [[ ${1:-} == --clean ]] && clean=1
    [[ -d $STATE ]] || { log "no state folder $STATE"; return 0; }
    take_lock
    # slurmds, stepds and jobs first, then the controller, then munged
    local node
    nodes_pids() { local n; for n in "${NODES[@]}"; do node_pids "$n"; done; }
    terminate nodes_pids
    terminate ctld_pid
    terminate munged_pid
    local left
    left=$(all_cluster_pids | tr '\n' ' ')
    [[ -z ${left// } ]] || die "processes still alive: $left"
    rm -f "$CTLD_PID" "$MUNGE_PID" "$STATE"/run/slurmd-*.pid "$STATE"/run/slurmd-*.launched
    if ((clean)); then
        rm -rf -- "$STATE"
        log "stopped; removed $STATE"
    else
        log "stopped (logs kept in $STATE/log)"
    fi
}

check_node() {
    local n
    for n in "${NODES[@]}"; do [[ $n == "${1:-}" ]] && return 0; done
    die "unknown node '${1:-}' (nodes: ${NODES[*]})"
}

cmd_stop_node() { # node: simulated crash
    local node=$1 pids more
    check_node "$node"
    [[ -s $CONF ]] || die "no cluster in $STATE"
    pids=$(node_pids "$node" | tr '\n' ' ')
    [[ -n ${pids// } ]] || { log "node $node: nothing running"; return 0; }
    # freeze first so no stepd can report its job's end, then kill everything
    kill -STOP $pids 2>/dev/null || true
    more=$(node_pids "$node" | tr '\n' ' ')
    kill -STOP $more 2>/dev/null || true
    kill -KILL $pids $more 2>/dev/null || true
    sleep 0.2
    left=$(alive_of $pids $more | tr '\n' ' ')
    [[ -z ${left// } ]] || die "node $node: still alive after SIGKILL: $left"
    rm -f "$(slurmd_pidfile "$node")"
    log "node $node killed (pids $(echo $pids $more | tr ' ' '\n' | sort -un | tr '\n' ' '))"
    log "it goes DOWN after SlurmdTimeout=${SLURMD_TIMEOUT}s + ping interval; poll with:"
    echo "SLURM_CONF=$CONF sinfo -h -N -n $node -o %t   # until it prints down*"
}

cmd_start_node() { # node
    local node=$1
    check_node "$node"
    [[ -s $CONF ]] || die "no cluster in $STATE (run start)"
    [[ -n $(munged_pid) && -n $(ctld_pid) ]] || die "munged/slurmctld not running (run start)"
    take_lock
    start_slurmd "$node"
    wait_nodes_idle "$node" || fail "node $node not back in service after ${WAIT_S}s"
    log "node $node: $(node_state "$node")"
}

cmd_status() {
    local rc=0 node p
    [[ -d $STATE ]] || { echo "no state folder $STATE"; return 1; }
    p=$(munged_pid);  echo "munged     ${p:-DEAD}";  [[ -n $p ]] || rc=1
    p=$(ctld_pid);    echo "slurmctld  ${p:-DEAD}";  [[ -n $p ]] || rc=1
    for node in "${NODES[@]}"; do
        p=$(slurmd_pid "$node"); echo "slurmd $node  ${p:-DEAD}"; [[ -n $p ]] || rc=1
    done
    echo "SLURM_CONF=$CONF"
    if [[ -s $CONF && -n $(ctld_pid) ]]; then
        SLURM_CONF=$CONF timeout 10 sinfo -N || rc=1
    fi
    return $rc
}

cmd_env() {
    [[ -s $CONF ]] || die "no cluster config in $STATE (run start)"
    [[ -n $(ctld_pid) ]] || die "slurmctld of $STATE is not running (run start)"
    print_env
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        env) [[ -n ${1:-} ]] && STATE=$1 ;;
    esac
    set_paths
    case $cmd in
        start) cmd_start ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        stop-node) [[ $# -eq 1 ]] || usage; cmd_stop_node "$1" ;;
        start-node) [[ $# -eq 1 ]] || usage; cmd_start_node "$1" ;;
        env) cmd_env ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
