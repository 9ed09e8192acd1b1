"""Recall@10 of vector index settings against exact search, with LanceDB's Python package: the
recall tables of docs/benchmarks.md (why the vector index is IVF-SQ).

    python3 scripts/vector-recall.py DB_DIR [QUERIES]

DB_DIR holds a `document_chunks` table, e.g. a copy of a user's folder after
`bash scripts/profile-sync-memory.sh` (the index is replaced in place: use a copy).
Queries are QUERIES (default 60) chunk vectors of the table, picked with a fixed seed; each
setting's index is built, then searched with and without `refine_factor(5)`.
"""
import random
import sys
import time

import lancedb
import numpy as np
from lancedb.index import IvfHnswSq, IvfPq, IvfSq

SETTINGS = [
    IvfPq(distance_type="cosine"),  # lance's default: 8 bits, one sub-vector per 16 dimensions
    IvfPq(distance_type="cosine", num_bits=4, num_sub_vectors=96),  # lancesync before 2026-12-06
    IvfHnswSq(distance_type="cosine"),
    IvfSq(distance_type="cosine"),  # lancesync's choice
]

table = lancedb.connect(sys.argv[1]).open_table("document_chunks")
count = int(sys.argv[2]) if len(sys.argv) > 2 else 60
vectors = table.to_arrow().select(["vector"])["vector"]
rows = random.Random(7).sample(range(table.count_rows()), count)
queries = [np.array(vectors[i].as_py(), dtype=np.float32) for i in rows]


def top10(query, exact=False, refine=None):
    search = table.search(query).distance_type("cosine").limit(10).select(["chunk_id"])
    if exact:
        search = search.bypass_vector_index()
    if refine:
        search = search.refine_factor(refine)
    return {r["chunk_id"] for r in search.to_list()}


truth = [top10(q, exact=True) for q in queries]
print(f"{table.count_rows()} rows, {count} queries")
for setting in SETTINGS:
    started = time.time()
    table.create_index("vector", config=setting, replace=True)
    built = time.time() - started
    recalls = []
    for refine in (None, 5):
        found = [top10(q, refine=refine) for q in queries]
        recalls.append(np.mean([len(f & t) / 10 for f, t in zip(found, truth)]))
    print(f"{setting}: build {built:.1f} s, recall@10 {recalls[0]:.3f}, with refine 5 {recalls[1]:.3f}")
