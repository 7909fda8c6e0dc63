"""The errors aexp raises on purpose.

Every error here carries one sentence a researcher can act on, and the exit code a command that
it ends leaves with (`exit_code`: aexp.door's table; 2 unless the class says otherwise). Inside
a pass, the workflow keeps it to the job it concerns (aexp.workflow.operations.contained).
"""

from __future__ import annotations


class AexpError(Exception):
    """Base class: a problem with the user's input or state, explained in one sentence.

    `exit_code`: 2, usage or settings (nothing was done); a subclass for work that failed says 1.
    """

    exit_code = 2


class UsageError(AexpError):
    """The command line itself is wrong (a flag's value, the grammar of --sp, a job id or an
    operation that names nothing)."""


class SettingsError(AexpError):
    """`signac.rc` (or an environment override) is missing, unreadable or malformed."""


class ProjectNotFoundError(AexpError):
    """No signac project (`.signac/config`) in the given directory or above it."""


class JobNotFoundError(AexpError):
    """A job id (or run id) matches no job, or a prefix matches several."""


class StatepointError(AexpError):
    """A state point signac would refuse, or that strict JSON cannot store."""


class BindingError(AexpError):
    """`job.doc["tracker"]` is missing where it is required, or has been corrupted."""


class JobBusyError(AexpError):
    """Another process is working on the job (executing, finishing or uploading its run)."""


class TrackerInitError(AexpError):
    """A tracker backend cannot be used: its SDK is missing or it refused the request."""


class TrackerUsageError(AexpError):
    """A tracker call got input it cannot record (bad metrics, missing artifact file)."""


class WorkspaceError(AexpError):
    """The project's files cannot be written (read-only, full, over quota): its sentence says
    where, what to do, and what it means for the work (aexp.door.storage_problem)."""

    exit_code = 1


class SubmissionError(AexpError):
    """A submission that SLURM would take but that cannot work (no time left to work in)."""


class NothingToRun(BindingError):
    """The run has ended (finished, or failed and not re-armed): there is no attempt to start.

    Found under the job's claim, so it also means that another process finished the job after
    this one chose to execute it; the workflow skips the job quietly then (aexp.attempt).
    """


class AttemptEnded(AexpError):
    """The attempt the job records as running had ended: its journal says so (recorded now)."""
