"""What the bench scripts share. Every script imports from here, and no script imports another.

- ``kit.core``: the fixed bench data (warehouse, SKUs, JWT secret), the ``logistics`` CLI,
  the quiet service environment, seeding over HTTP, ``Server`` subprocesses;
- ``kit.databases``: throwaway PostgreSQL (or SQLite) databases, migrated or not;
- ``kit.broker``: kombu connections, the broker's version, deleting a bus namespace;
- ``kit.wrk``: wrk, its report parser and installer, the bare endpoint, its table columns;
- ``kit.facts``: the machine facts printed above every table;
- ``kit.cpu``: where the CPU went during a phase;
- ``kit.stats``: percentiles and millisecond cells;
- ``kit.shipments``: a keep-alive HTTP client and the driver that POSTs shipments;
- ``kit.demo_data``: three databases holding the demo data (the hot reads' benches);
- ``kit.results``: the figures a bench hands to `make bench`'s report.

The modules import only what they need, so a script that uses none of the broker code
does not import kombu.
"""

import atexit as _atexit

from . import facts as _facts

# Every bench ends with the load average and, above the cores, a warning: registered here, where
# every script passes, so no bench can forget it (a child process a bench starts prints it to
# its own log).
_atexit.register(lambda: print(_facts.at_exit(), flush=True))
