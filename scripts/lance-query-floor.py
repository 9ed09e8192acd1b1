"""What one LanceDB query costs on its own, single-threaded, with LanceDB's Python package (a
release build): the floor under lancesync's search latency (docs/benchmarks.md, issue 24).

    python3 scripts/lance-query-floor.py DB_DIR [PARTITIONS ...]

DB_DIR holds a `document_chunks` table, e.g. the user folder a search benchmark run leaves
(`/tmp/lancesync-search-bench/db/users/bench`); use a copy, as the vector index is replaced
when PARTITIONS are given. For each query shape the mean of 100 runs is printed. Then, for
each IVF-SQ partition count, recall@10 against exact search (200 queries: 100 chunk vectors of
the table and 100 normalised sums of three, with re-ranking of 5x) and the mean latency at
lance's adaptive probing and at fixed probe counts.
"""
import random
import sys
import time

import lancedb
import numpy as np
from lancedb.index import IvfSq

table = lancedb.connect(sys.argv[1]).open_table("document_chunks")
rows = table.count_rows()
vectors = np.stack(table.to_arrow().select(["vector"])["vector"].to_numpy(zero_copy_only=False))
pick = random.Random(7)
queries = [vectors[i] for i in pick.sample(range(rows), 100)]
for _ in range(100):
    v = vectors[pick.sample(range(rows), 3)].sum(0)
    queries.append((v / np.linalg.norm(v)).astype(np.float32))
COLUMNS = ["doc_id", "source_id", "source_uri", "title", "doc_type", "chunk_index", "chunk_text"]


def mean_ms(run, n=100):
    run()
    started = time.perf_counter()
    for _ in range(n):
        run()
    return 1000 * (time.perf_counter() - started) / n


def vector(q, nprobes=None, refine=5, columns=COLUMNS, exact=False):
    s = table.search(q).distance_type("cosine").limit(10).select(columns + ["_distance"])
    if exact:
        return s.bypass_vector_index()
    if nprobes:
        s = s.nprobes(nprobes)
    return s.refine_factor(refine) if refine else s


q = queries[0]
print(f"{rows} rows; indexes: {[i.index_type for i in table.list_indices()]}")
for name, run in [
    ("count_rows", lambda: table.count_rows()),
    ("filter, 10 rows of the 7 result columns", lambda: table.search().where("chunk_index = 3").limit(10).select(COLUMNS).to_arrow()),
    ("full text, 2 words, 7 columns", lambda: table.search("garden tomato", query_type="fts").limit(10).select(COLUMNS).to_arrow()),
    ("vector, exact scan, 7 columns", lambda: vector(q, exact=True).to_arrow()),
    ("vector, index, refine 5, 7 columns", lambda: vector(q).to_arrow()),
    ("vector, index, no refine, 7 columns", lambda: vector(q, refine=None).to_arrow()),
    ("vector, index, no refine, distance only", lambda: vector(q, refine=None, columns=[]).to_arrow()),
    ("vector, index, 1 probe, no refine, distance only", lambda: vector(q, nprobes=1, refine=None, columns=[]).to_arrow()),
]:
    print(f"{name}: {mean_ms(run, 20 if 'exact' in name else 100):.2f} ms")


def top10(q, **kw):
    return {r["chunk_id"] for r in vector(q, columns=["chunk_id"], **kw).to_list()}


truth = [top10(q, exact=True) for q in queries]
for partitions in [int(p) for p in sys.argv[2:]]:
    for index in table.list_indices():
        if index.columns == ["vector"]:
            table.drop_index(index.name)
    started = time.perf_counter()
    table.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=partitions), replace=True)
    built = time.perf_counter() - started
    for nprobes in (None, 1, 2, 5, 20):
        started = time.perf_counter()
        found = [top10(q, nprobes=nprobes) for q in queries]
        ms = 1000 * (time.perf_counter() - started) / len(queries)
        recall = np.mean([len(f & t) / 10 for f, t in zip(found, truth)])
        probes = nprobes or "adaptive"
        assert [i.index_type for i in table.list_indices() if i.columns == ["vector"]] == ["IvfSq"]
        print(f"{partitions} partitions (built {built:.1f} s), nprobes {probes}: {ms:.2f} ms, recall@10 {recall:.3f}")
