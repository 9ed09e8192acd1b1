#!/usr/bin/env python3
"""Build the public retrieval test sets of docs/benchmarks.md in BEIR's layout.

    python3 scripts/retrieval-sets.py RAW_DIR OUT_DIR

RAW_DIR holds the files as obtained from public repositories (see RAW_DIR/SOURCES.md; the
project keeps them in ../shared/datasets/retrieval, none are committed here). For each set,
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

Only the standard library is used.
"""

import csv
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


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    raw, out = Path(sys.argv[1]), Path(sys.argv[2])
    for name, build in (("scifact", scifact), ("cranfield", cranfield), ("cisi", cisi)):
        build(raw / name, out / name)


if __name__ == "__main__":
    main()
