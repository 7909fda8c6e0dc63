"""The sweep's web dashboard: every job's run, state, links, attempts and curves, in a browser.

    python dashboard.py run                serve it on localhost:8888; prints the login URL
    python dashboard.py run --port 8890    another port (--host 0.0.0.0: every interface)

It reads the jobs themselves (documents and journals): it works offline, on a cluster's login
node, before any sync. On a cluster, start it on the login node and forward its port from your
own machine, then open the printed URL (http://localhost:8888/login?token=...) there:

    ssh -N -L 8888:localhost:8888 you@login.cluster.example

What it shows first (metrics, the key that colours the curves, the band) is set in signac.rc's
[dashboard] section; by default every metric the runs logged, coloured by the first state-point
key that varies. The token in that URL is signac-dashboard's access token: anyone with it sees
the dashboard, so keep it to yourself. Needs `pip install 'agentic-experiments[dashboard]'`;
docs/results.md.
"""

from aexp.startup import INTERRUPTED_LINE, quiet_interrupts

# First: a Ctrl-C while the imports below load ends it in one line (aexp/startup.py).
quiet_interrupts(__name__, f"error: {INTERRUPTED_LINE}")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from aexp.dashboard import launch  # noqa: E402

if __name__ == "__main__":
    sys.exit(launch(root=Path(__file__).resolve().parent))
