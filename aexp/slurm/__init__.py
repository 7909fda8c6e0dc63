"""Sweeps at cluster scale: what `python project.py submit` and `aexp resources` know of SLURM.

    commands.py     sbatch, squeue, scontrol, sacctmgr, scancel: run with timeouts, parsed
    limits.py       the queue limits that apply to the user (MaxSubmitJobs, MaxSubmitPU,
                    MaxJobCount, [slurm] max_submit) and the room they leave
    plan.py         which submissions go now (the canary first), which wait: a pure function
    submission.py   one `submit` pass: planned, sent with the ids sbatch printed, reported
                    honestly (sent, refused, waiting), recorded in logs/
    canary.py       the canary's record, and what `status` says of jobs held behind it
    sizing.py       walltime and memory suggested from past attempts (`aexp resources`,
                    `[slurm] walltime = auto`, `memory = auto`)

None of it imports signac-flow: aexp.workflow.project calls it from flow's submit path.
docs/hpc.md is the user's account.
"""
