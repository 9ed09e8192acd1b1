"""Memory of building an IVF-PQ index over an existing chunks table, with LanceDB's Python
package: the control experiment of docs/benchmarks.md ("it is not the PQ training").

    python3 scripts/index-memory.py DB_DIR NUM_BITS IVF_SAMPLE_RATE

DB_DIR holds a `document_chunks` table, e.g. a copy of a user's folder after
`bash scripts/profile-sync-memory.sh` (the index is replaced in place: use a copy).
Prints the build time and the rise of RSS (sampled every 50 ms) over the process's
baseline.
"""
import sys
import threading
import time

import lancedb
from lancedb.index import IvfPq

peak = [0]


def sample():
    while True:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    peak[0] = max(peak[0], int(line.split()[1]) // 1024)
        time.sleep(0.05)


threading.Thread(target=sample, daemon=True).start()
table = lancedb.connect(sys.argv[1]).open_table("document_chunks")
bits, sample_rate = int(sys.argv[2]), int(sys.argv[3])
time.sleep(0.3)
base = peak[0]
started = time.time()
table.create_index(
    "vector",
    config=IvfPq(distance_type="cosine", num_bits=bits, sample_rate=sample_rate),
    replace=True,
)
time.sleep(0.2)
print(
    f"rows {table.count_rows()}, num_bits {bits}, IVF sample_rate {sample_rate}: "
    f"{time.time() - started:.1f} s, baseline {base} MB, peak {peak[0]} MB, rise {peak[0] - base} MB"
)
