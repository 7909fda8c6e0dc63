{#
    The batch script `python project.py submit` sends to SLURM (docs/hpc.md).

    flow renders templates/script.sh for every submission. It extends the template of flow's
    compute environment: flow's slurm.sh on a SLURM cluster (or a site template built on it),
    and slurm.sh under flow's TestEnvironment too, so the script can be checked without SLURM.
    On top of flow's script it adds:
      - offline tracking on the compute node: nothing is sent, W&B writes into the job workspace;
      - a GPU line (flow's slurm.sh has none), partition and account from signac.rc [slurm];
      - the warning signal before the time limit, forwarded (like scancel's SIGTERM) to every
        operation process, which checkpoints and records the run as preempted;
      - a requeue after a preemption by the warning signal, so the job resumes the same run.
    The context variable `slurm` is signac.rc's [slurm] section (project.py, slurm_options).
    Site additions (module loads, environment activation) go into `custom_content` below.
#}
{% extends "slurm.sh" if (base_script == "base_script.sh" and environment.scheduler_type) else base_script %}
{% set signals = [slurm.warning_signal, "TERM"]|unique|list %}
{% block header %}
{{- super() -}}
    {% if "#SBATCH" in super() %}
        {% if resources.ngpu_tasks %}
#SBATCH --gpus={{ resources.ngpu_tasks }}
        {% endif %}
        {% if slurm.partition and not partition %}
#SBATCH --partition={{ slurm.partition }}
        {% endif %}
        {% if slurm.account %}
#SBATCH --account={{ slurm.account }}
        {% endif %}
#SBATCH --signal=B:{{ slurm.warning_signal }}@{{ slurm.warning_seconds }}
        {% if slurm.requeue %}
#SBATCH --requeue
#SBATCH --open-mode=append
        {% endif %}
        {% if not job_output %}
#SBATCH --output="{{ slurm.log_dir }}/slurm-%j.out"
        {% endif %}
    {% endif %}
{% endblock header %}

{% block project_header %}
{{- super() }}
# -- aexp: offline tracking --------------------------------------------------------------------
# Compute nodes have no network: each run is written into its job's workspace (W&B offline)
# and synced later from a login node. Nothing is sent from here, W&B's own telemetry included.
export AEXP_OFFLINE=true
export WANDB_MODE=offline
export WANDB_ERROR_REPORTING=false
export WANDB__DISABLE_STATS=true

# -- aexp: signals -----------------------------------------------------------------------------
# SLURM sends SIG{{ slurm.warning_signal }} to this shell alone {{ slurm.warning_seconds }} s before the time limit (--signal=B:);
# scancel and the time limit itself send SIGTERM. Operations run in the background, so the
# trap runs at once and forwards the signal to them: the run checkpoints, is recorded as
# preempted with exit code 128+signal, and is closed. After a preemption by the warning
# signal the job requeues itself{% if not slurm.requeue %} if [slurm] requeue is on (it is off){% endif %}; after SIGTERM (scancel) never.
aexp_pids=""
aexp_signals=""
aexp_traps=0
aexp_rc=0
aexp_preempted=""
aexp_preempt_code=$((128 + $(kill -l {{ slurm.warning_signal }})))
aexp_skipped=""
aexp_log() { echo "aexp: $(date '+%F %T') $*" >&2; }
aexp_forward() {
    aexp_signals="$aexp_signals $1"
    aexp_traps=$((aexp_traps + 1))
    aexp_log "SIG$1 received; forwarding it to:${aexp_pids:- (no operation running)}"
    for aexp_pid in $aexp_pids; do kill -s "$1" "$aexp_pid" 2>/dev/null || true; done
}
{% for sig in signals %}
trap 'aexp_forward {{ sig }}' {{ sig }}
{% endfor %}
aexp_may_start() {  # false once signalled: the operations not started yet stay eligible
    [ -z "$aexp_signals" ] && return 0
    aexp_log "signalled: not starting $1"
    aexp_skipped=1
    return 1
}
aexp_wait() {  # wait for every started operation; a trapped signal interrupts `wait`: wait again
    local pid status again seen
    for pid in $aexp_pids; do
        seen=$aexp_traps
        status=0
        wait "$pid" || status=$?
        while [ "$status" -gt 128 ] && [ "$aexp_traps" != "$seen" ]; do
            seen=$aexp_traps
            again=0
            wait "$pid" 2>/dev/null || again=$?
            [ "$again" = 127 ] && break  # the first wait had its exit status already
            status=$again
        done
        aexp_log "operation process $pid exited with $status"
        [ "$status" = "$aexp_preempt_code" ] && aexp_preempted=1
        [ "$aexp_rc" = 0 ] && aexp_rc=$status
    done
    aexp_pids=""
}
aexp_log "job ${SLURM_JOB_ID:-(not in SLURM)} on ${HOSTNAME:-?}, restart ${SLURM_RESTART_COUNT:-0}"

{% endblock project_header %}
{% block custom_content %}
{#
    Site setup that every job needs goes here, e.g.:
module purge
module load python/3.11 cuda/12.1
source /path/to/venv/bin/activate
#}
{% endblock custom_content %}
{% block body %}
    {% for operation in operations %}

# {{ "%s"|format(operation) }}
        {% block pre_operation scoped %}
        {% endblock pre_operation %}
if aexp_may_start {{ "%s"|format(operation)|quote_argument }}; then
{{ operation.cmd }} &
aexp_pids="$aexp_pids $!"
fi
        {% if not parallel %}
aexp_wait
        {% endif %}
    {% endfor %}
{% endblock body %}
{% block footer %}
    {% if parallel %}
aexp_wait
    {% endif %}

# -- aexp: requeue -----------------------------------------------------------------------------
    {% if slurm.warning_signal == "TERM" %}
# No requeue: the warning signal TERM cannot be told apart from scancel ([slurm] warning_signal).
    {% else %}
case "$aexp_signals" in
*TERM*) ;;  # scancel, or the time limit itself: the run is recorded as preempted, not requeued
*{{ slurm.warning_signal }}*)
    if [ -n "$aexp_preempted$aexp_skipped" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        {% if slurm.requeue %}
        aexp_log "preempted by SIG{{ slurm.warning_signal }}: requeueing job $SLURM_JOB_ID to resume"
        scontrol requeue "$SLURM_JOB_ID" ||
            aexp_log "requeue failed: the next 'python project.py submit' resubmits the job"
        {% else %}
        aexp_log "preempted; [slurm] requeue is off: the next 'python project.py submit' resubmits it"
        {% endif %}
    fi
    ;;
esac
    {% endif %}
exit "$aexp_rc"
{% endblock footer %}
