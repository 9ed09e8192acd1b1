#!/usr/bin/env python3
"""Build the public retrieval test sets of docs/benchmarks.md in BEIR's layout.

    python3 scripts/retrieval-sets.py RAW_DIR OUT_DIR

RAW_DIR holds the files as obtained from the public repositories below (none are committed
here), one folder per set; each file is checked against the sha256 it had when the figures in
docs/benchmarks.md were measured, and a set whose files differ is refused. For each set,
OUT_DIR/<set>/ gets corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id", "text"})
and qrels/test.tsv (scifact also qrels/train.tsv; query-id, corpus-id, score; the score is the gain nDCG uses).

- scifact: BEIR's SciFact. Its 300 test queries are the dev claims of allenai/scifact, its 809
  train queries the train claims, and a query's relevant abstracts are the claim's cited
  documents; the abstract's sentences are joined with spaces, as BEIR did. The counts are
  checked against BEIR's. Only the train split may be used to choose settings.
- cranfield: Cranfield 1400, 225 queries. cran.qry numbers its queries with gaps (001, 002,
  004, ...) while cranqrel numbers them 1 to 225 in order, so queries are renumbered by
  position. Relevance codes 1 (complete answer) to 4 (minimum interest) become gains 4 to 1;
  code -1 (no relevance given) is dropped.
- cisi: CISI, 1,460 documents; only the 76 queries with judgments are kept, gain 1.

Sources (public GitHub repositories, at these commits):
- scifact/scifact.zip: sumithra-p-v/claimverifier b42f1c3444b28884ddcfadffafbfe223646c6c37,
  data/scifact.zip (allenai/scifact's corpus_train.csv and claims_validation.csv)
- cranfield/{cran.all.1400, cran.qry, cranqrel}: noramtboraas/information-retrieval
  4ea1b8e02da1db64b68b0364d50620b3c95528dc
- cisi/{CISI.ALL, CISI.QRY, CISI.REL}: Shakiba-Alipour/Information-Retrieval-on-CISI
  7a23c34602e8949d795bb1835004546e00d1d1ba

Only the standard library is used.
"""

import csv
import hashlib
import io
import json
import re
import sys
import tokenize
import zipfile
from ast import literal_eval
from pathlib import Path


def write_set(out: Path, corpus, queries, splits):
    """corpus: [(id, title, text)], queries: [(id, text)], splits: {name: [(qid, docid, gain)]}."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    judged = {q for qrels in splits.values() for q, _, _ in qrels}
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, title, text in corpus:
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in queries:
            if qid in judged:
                f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    counts = []
    for split, qrels in splits.items():
        with open(out / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, doc_id, gain in qrels:
                f.write(f"{qid}\t{doc_id}\t{gain}\n")
        counts.append(f"{split}: {len({q for q, _, _ in qrels})} queries, {len(qrels)} judgments")
    print(f"{out.name}: {len(corpus)} documents; " + "; ".join(counts))


def numpy_strings(repr_text: str):
    """The strings of a NumPy array's repr, "['a' 'b']": Python would join adjacent literals."""
    tokens = tokenize.generate_tokens(io.StringIO(repr_text).readline)
    return [literal_eval(t.string) for t in tokens if t.type == tokenize.STRING]


def scifact_claims(rows):
    """BEIR's queries and judgments from allenai/scifact claims: the cited documents are relevant."""
    queries, qrels, seen = [], [], set()
    for c in rows:
        if c["id"] in seen:
            continue  # one row per evidence set; the claim and its citations repeat
        seen.add(c["id"])
        queries.append((c["id"], c["claim"]))
        for doc_id in dict.fromkeys(re.findall(r"\d+", c["cited_doc_ids"])):
            qrels.append((c["id"], doc_id, 1))
    return queries, qrels


def scifact(raw: Path, out: Path):
    csv.field_size_limit(1 << 30)
    with zipfile.ZipFile(raw / "scifact.zip") as z:

        def rows(name):
            return list(csv.DictReader(io.TextIOWrapper(z.open(name), "utf-8")))

        corpus_rows = rows("corpus_train.csv")
        test_queries, test = scifact_claims(rows("claims_validation.csv"))
        train_queries, train = scifact_claims(rows("claims_train.csv"))
    corpus = [
        (r["doc_id"], r["title"], " ".join(numpy_strings(r["abstract"]))) for r in corpus_rows
    ]
    # BEIR's figures: 5,183 documents; test 300 queries, 339 judgments; train 809 and 919.
    counts = (len(corpus), len(test_queries), len(test), len(train_queries), len(train))
    assert counts == (5183, 300, 339, 809, 919), counts
    write_set(out, corpus, test_queries + train_queries, {"test": test, "train": train})


def smart_records(text: str):
    """Records of the SMART format: '.I n' starts one, '.X' (a field letter) starts a field."""
    records = []
    for block in re.split(r"^\.I\s+", text, flags=re.M)[1:]:
        first, _, body = block.partition("\n")
        fields, name = {}, None
        for line in body.splitlines():
            m = re.match(r"^\.([A-Z])\s*$", line)
            if m:
                name = m.group(1)
                fields.setdefault(name, [])
            elif name:
                fields[name].append(line)
        records.append((first.strip(), {k: " ".join(" ".join(v).split()) for k, v in fields.items()}))
    return records


def cranfield(raw: Path, out: Path):
    docs = smart_records((raw / "cran.all.1400").read_text(encoding="latin-1"))
    corpus = [(str(int(i)), f.get("T", ""), f.get("W", "")) for i, f in docs]
    queries = [
        (str(n), f["W"])
        for n, (_, f) in enumerate(smart_records((raw / "cran.qry").read_text("latin-1")), 1)
    ]
    qrels = []
    for line in (raw / "cranqrel").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in {"1", "2", "3", "4"}:
            qrels.append((str(int(parts[0])), str(int(parts[1])), 5 - int(parts[2])))
    assert (len(corpus), len(queries)) == (1400, 225), (len(corpus), len(queries))
    write_set(out, corpus, queries, {"test": qrels})


def cisi(raw: Path, out: Path):
    docs = smart_records((raw / "CISI.ALL").read_text(encoding="latin-1"))
    corpus = [(str(int(i)), f.get("T", ""), f.get("W", "")) for i, f in docs]
    queries = [
        (str(int(i)), " ".join(x for x in (f.get("T", ""), f.get("W", "")) if x))
        for i, f in smart_records((raw / "CISI.QRY").read_text(encoding="latin-1"))
    ]
    qrels = sorted(
        {(str(int(p[0])), str(int(p[1])), 1) for p in
         (line.split() for line in (raw / "CISI.REL").read_text().splitlines()) if len(p) >= 2},
        key=lambda r: (int(r[0]), int(r[1])),
    )
    assert len(corpus) == 1460, len(corpus)
    write_set(out, corpus, queries, {"test": qrels})


# The files the figures in docs/benchmarks.md were measured on.
SHA256 = {
    "scifact/scifact.zip": "a798a7046af0f6fa04476448459ce7cafeea5bd90d4d99c53a0e27dc5e1a4673",
    "cranfield/cran.all.1400": "fbb8935a93263ab6c9fadefb507fd7cd5e101e7fbeb31c12e6bff6dd501315e8",
    "cranfield/cran.qry": "99578ceb88941ef89c14faf7c63c23776a376d8fba319b990f01d0c601d8b03f",
    "cranfield/cranqrel": "a90f56082cd44db70bf2c21ebca39a1a34e37c82ccb5ddf1bcc64f18795234c7",
    "cisi/CISI.ALL": "c13934ad921234b571e7b424af3461fe39dccb16757cb21954b3aea5250d072e",
    "cisi/CISI.QRY": "b72de0e0cb8aa5c93ac988e5be0400cc18949d0a94913a248783a37dd97d5470",
    "cisi/CISI.REL": "f7396c92586c61953ccb7ae99ad8d3ac749ac3b989041fc93a9e311568f58997",
}


def check_files(raw: Path):
    for name, want in SHA256.items():
        path = raw / name
        if not path.is_file():
            sys.exit(f"{path} is missing (see the sources in this script's help)")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            sys.exit(f"{path}: sha256 {got}, expected {want}: not the file the figures came from")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    check_files(raw)
    for name, build in (("scifact", scifact), ("cranfield", cranfield), ("cisi", cisi)):
        build(raw / name, out / name)


if __name__ == "__main__":
    main()
