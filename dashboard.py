"""The sweep's web dashboard: every job's run, state, links, attempts and curves, in a browser.

    python dashboard.py run                serve it on localhost:8888; prints the login URL
    python dashboard.py run --port 8890    another port (--host 0.0.0.0: every interface)

It reads the jobs themselves (documents and journals): it works offline, on a cluster's login
node, before any sync. On a cluster, start it on the login node and forward its port from your
own machine, then open the printed URL (http://localhost:8888/login?token=...) there:

    ssh -N -L 8888:localhost:8888 you@login.cluster.example

The token in that URL is signac-dashboard's access token: anyone with it sees the dashboard, so
keep it to yourself. Needs `pip install 'agentic-experiments[dashboard]'`; docs/results.md.
"""

import sys
from pathlib import Path

from aexp.dashboard import launch

# The metrics shown first, and the state-point key that colours the sweep's figure: set yours.
METRICS = ["loss", "accuracy"]
COLOUR_BY = "condition"

if __name__ == "__main__":
    sys.exit(launch(root=Path(__file__).resolve().parent, metrics=METRICS, by=COLOUR_BY))
