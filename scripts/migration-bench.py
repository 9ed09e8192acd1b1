"""Migration benchmark: adopting N documents from tables the original system wrote, against
ingesting the same documents from scratch, in one run (ratios, since machines are noisy).

Usage: python3 scripts/migration-bench.py [--documents 10000] [--provider builtin]
Needs: python3 with lancedb (scripts/test.sh installs it) and a built sync-cli
(`cargo build --workspace`; $CARGO_TARGET_DIR/debug/sync-cli, or --cli PATH).

Workload: N Markdown files of 5 paragraphs (about 2.4 KB each) in one folder source; the
original tables hold each file's row (MD5 checksum of its content) and 5 chunks with
384-d vectors, written by LanceDB's Python package. Three timed runs, each into a fresh index:
  ingest:          `sync-cli sync` of the folder (extract, chunk, embed, write);
  migrate, kept:   `sync-cli migrate --legacy-model <the index's model>` (vectors kept);
  migrate, embed:  `sync-cli migrate` without it (every chunk's text embedded again).
Then `sync-cli sync` after the kept migration: it must read nothing.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time

import lancedb
import pyarrow as pa

DIM = 384
WORDS = ("garden tomato basil water sun soil bread flour starter oven tax receipt invoice "
         "meeting budget travel train hotel museum river mountain recipe salt butter").split()


def paragraphs(rng, n):
    return ["Paragraph %d. " % p + " ".join(rng.choice(WORDS) for _ in range(80)) + "."
            for p in range(n)]


def build(work, n):
    rng = random.Random(7)
    folder = os.path.join(work, "docs")
    os.makedirs(folder)
    docs, chunks = [], []
    for i in range(n):
        paras = paragraphs(rng, 5)
        text = "# Note %d\n\n" % i + "\n\n".join(paras) + "\n"
        path = os.path.join(folder, "note-%05d.md" % i)
        with open(path, "w") as f:
            f.write(text)
        vec = [rng.random() for _ in range(DIM)]
        docs.append({"doc_id": "old-%d" % i, "user_id": "bench", "source_uri": path,
                     "doc_type": "md", "title": "Note %d" % i, "metadata_json": "{}",
                     "ingested_at": "2024-05-01T10:00:00Z", "processing_status": "completed",
                     "error_message": None, "total_chunks": 5,
                     "checksum": hashlib.md5(text.encode()).hexdigest(),
                     "last_synced": "2024-05-01T10:00:00Z", "vector": vec})
        for j, p in enumerate(paras):
            chunks.append({"chunk_id": "old-%d_%d" % (i, j), "doc_id": "old-%d" % i,
                           "user_id": "bench", "chunk_index": j, "chunk_text": p,
                           "metadata": "{}", "created_at": "2024-05-01T10:00:00Z",
                           "checksum": hashlib.md5(p.encode()).hexdigest(),
                           "vector": [rng.random() for _ in range(DIM)]})
    vector = pa.list_(pa.float32(), DIM)
    db = lancedb.connect(os.path.join(work, "original", "users", "bench"))
    doc_schema = pa.schema([(k, pa.int32() if k == "total_chunks" else vector if k == "vector"
                             else pa.string()) for k in docs[0]])
    chunk_schema = pa.schema([(k, pa.int32() if k == "chunk_index" else vector if k == "vector"
                               else pa.string()) for k in chunks[0]])
    db.create_table("processed_documents", pa.Table.from_pylist(docs, schema=doc_schema))
    db.create_table("document_chunks", pa.Table.from_pylist(chunks, schema=chunk_schema))
    return folder


def run(cli, work, index, args, provider):
    env = {"HOME": work, "PATH": os.environ.get("PATH", ""), "EMBEDDING_PROVIDER": provider,
           "LANCEDB_URI": os.path.join(index, "db"), "SYNC_STATE_DIR": os.path.join(index, "state"),
           "RUST_LOG": "warn",
           "EMBEDDING_MODEL_PATH": os.environ.get("EMBEDDING_MODEL_PATH", os.path.expanduser(
               "~/.local/share/lancesync/models/all-MiniLM-L6-v2"))}
    started = time.monotonic()
    out = subprocess.run([cli] + args, env=env, capture_output=True, text=True, cwd=work)
    took = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit("%s failed (%d): %s\n%s" % (" ".join(args), out.returncode, out.stdout[-2000:], out.stderr[-2000:]))
    return took, out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", type=int, default=10000)
    ap.add_argument("--provider", default="builtin")
    ap.add_argument("--cli", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lancesync/target")), "debug", "sync-cli"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="migration-bench-")
    try:
        started = time.monotonic()
        folder = build(work, a.documents)
        print("workload: %d documents, %d chunks, written in %.1f s" % (a.documents, 5 * a.documents, time.monotonic() - started))
        results = {}
        for name in ("ingest", "migrate, kept", "migrate, embed"):
            index = os.path.join(work, name.replace(", ", "-"))
            run(a.cli, work, index, ["sources", "add", "notes", folder, "--user", "bench"], a.provider)
            if name == "ingest":
                took, _ = run(a.cli, work, index, ["sync", "--user", "bench", "--json"], a.provider)
            else:
                _, status = run(a.cli, work, index, ["status", "--user", "bench", "--json"], a.provider)
                args = ["migrate", "--from", os.path.join(work, "original"), "--user", "bench", "--json"]
                if name == "migrate, kept":
                    model = json.loads(status)["active_embedder"]["model"]
                    args += ["--legacy-model", model]
                took, out = run(a.cli, work, index, args, a.provider)
                report = json.loads(out)["users"][0]
                assert report["adopted"] == a.documents, report
            results[name] = took
            if name == "migrate, kept":
                after, out = run(a.cli, work, index, ["sync", "--user", "bench", "--json"], a.provider)
                sync = json.loads(out)[0]
                assert sync["unchanged"] == a.documents and sync["chunks_written"] == 0, sync
                results["sync after migrating"] = after
        base = results["ingest"]
        print("| run | seconds | documents/s | vs ingest |")
        print("| --- | --- | --- | --- |")
        for name, took in results.items():
            print("| %s | %.1f | %.0f | %.2f× |" % (name, took, a.documents / took, took / base))
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
