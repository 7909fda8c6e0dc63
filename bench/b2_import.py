"""Benchmark 2: `python -c "import aexp"` vs `python -c "import signac"` (fresh processes).

Also asserts, in a separate process, that importing aexp (and touching every public name) imports
neither wandb nor flow. aexp's package imports its submodules on first use, so `import aexp`
itself is nearly free; an informational line times `from aexp import *`, which loads them all.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bench.common import PYTHON, Result, alternate, hermetic_env, log, make_result, run_timed

LIMIT = 1.10
CHECK = (
    "import sys, aexp; from aexp import *; "
    "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'flow')); "
    "assert not bad, bad; print(len(sys.modules))"
)


def run(opts: Any) -> list[Result]:
    where = opts.cache / "import-env"
    env = hermetic_env(where)
    check = subprocess.run(
        [PYTHON, "-c", CHECK], cwd=where, env=env, capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"importing aexp imported wandb or flow: {check.stderr.strip()}")
    reps = opts.reps * 4
    signac_ = [PYTHON, "-c", "import signac"]
    rows = [
        ("import aexp vs import signac", "import aexp", True),
        # Informational: what using the library costs. `from aexp import *` touches every
        # public name, i.e. imports everything `import aexp` imported before it became lazy.
        ("from aexp import * vs import signac", "from aexp import *", False),
    ]
    results = []
    for name, code, judged in rows:
        log(f"  {code}: {reps} alternating repetitions")
        a, b = alternate(
            lambda code=code: run_timed([PYTHON, "-c", code], where, env),
            lambda: run_timed(signac_, where, env),
            reps,
            warmup=2,
        )
        results.append(
            make_result(
                name,
                2,
                a,
                b,
                limit=LIMIT,
                judged=judged,
                notes=f"python -c {code!r} vs python -c 'import signac', fresh interpreters; "
                "wandb and flow never imported (asserted)",
                extra={"modules_after_import_aexp": int(check.stdout.strip() or 0)},
            )
        )
    return results
