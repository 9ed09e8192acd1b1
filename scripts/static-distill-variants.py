#!/usr/bin/env python3
"""Compare ways of distilling the static model from all-MiniLM-L6-v2, offline and quickly.

Runs the teacher (a plain NumPy BERT, checked against lancesync's own distillation: cosine
1.0000 per token) on every token of its vocabulary, builds each variant's table, and scores
vector search with whole documents (first 512 tokens, no chunking) on the public sets that
scripts/retrieval-sets.py builds. Whole-document scores run lower than the retrieval bench's
chunked ones; the script is for comparing recipes, the bench for the figures users get.

    python3 -m pip install numpy scipy tokenizers safetensors
    python3 scripts/static-distill-variants.py [MODEL_DIR] [SETS_DIR]

Defaults: the folder scripts/env.sh installs the model into, ~/.cache/lancesync/retrieval-sets.
The per-token outputs are cached in MODEL_DIR/../distill-cache (two minutes to make on 2 cores).
"""

import collections
import json
import os
import sys

import numpy as np
import scipy.special
from safetensors.numpy import load_file
from tokenizers import Tokenizer

HOME = os.path.expanduser("~")
MODEL = sys.argv[1] if len(sys.argv) > 1 else f"{HOME}/.local/share/lancesync/models/all-MiniLM-L6-v2"
SETS = sys.argv[2] if len(sys.argv) > 2 else f"{HOME}/.cache/lancesync/retrieval-sets"
CACHE = os.path.join(os.path.dirname(os.path.abspath(MODEL)), "distill-cache")

W = load_file(f"{MODEL}/model.safetensors")
TOKENIZER = Tokenizer.from_file(f"{MODEL}/tokenizer.json")
TOKENIZER.no_truncation()
TOKENIZER.no_padding()
HEADS, DIM, LAYERS = 12, 384, 6


def layer_norm(x, name):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-12) * W[f"{name}.weight"] + W[f"{name}.bias"]


def linear(x, name):
    return x @ W[f"{name}.weight"].T + W[f"{name}.bias"]


def bert(ids):
    """The teacher's last hidden state for rows of token ids of one length (no padding)."""
    batch, width = ids.shape
    x = (
        W["embeddings.word_embeddings.weight"][ids]
        + W["embeddings.position_embeddings.weight"][:width][None]
        + W["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    head = DIM // HEADS
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}"

        def split(t):
            return t.reshape(batch, width, HEADS, head).transpose(0, 2, 1, 3)

        q = split(linear(x, f"{p}.attention.self.query"))
        k = split(linear(x, f"{p}.attention.self.key"))
        v = split(linear(x, f"{p}.attention.self.value"))
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        c = (a @ v).transpose(0, 2, 1, 3).reshape(batch, width, DIM)
        x = layer_norm(linear(c, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        i = linear(x, f"{p}.intermediate.dense")
        i = 0.5 * i * (1 + scipy.special.erf(i / np.sqrt(2)))
        x = layer_norm(linear(i, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    return x


def token_outputs():
    """Per token of the vocabulary, run as [CLS] token [SEP]: the mean over the three
    positions (the teacher's pooling) and the output at the token."""
    os.makedirs(CACHE, exist_ok=True)
    files = [f"{CACHE}/pooled.npy", f"{CACHE}/at-token.npy"]
    if all(os.path.exists(f) for f in files):
        return [np.load(f) for f in files]
    size = TOKENIZER.get_vocab_size()
    cls, sep = TOKENIZER.token_to_id("[CLS]"), TOKENIZER.token_to_id("[SEP]")
    pooled = np.zeros((size, DIM), np.float32)
    at_token = np.zeros((size, DIM), np.float32)
    for start in range(0, size, 2048):
        ids = np.array([[cls, i, sep] for i in range(start, min(size, start + 2048))])
        out = bert(ids)
        pooled[start : start + len(ids)] = out.mean(1)
        at_token[start : start + len(ids)] = out[:, 1]
    for f, a in zip(files, [pooled, at_token]):
        np.save(f, a)
    return pooled, at_token


def sif(a):
    """lancesync's weights: a / (a + p), p a Zipf estimate from the token's rank, counting
    from the first word of the vocabulary ("the")."""
    size = TOKENIZER.get_vocab_size()
    first = TOKENIZER.token_to_id("the")
    rank = np.maximum(np.arange(size) - first, 0) + 1
    p = 1 / (rank * np.sum(1 / np.arange(1, size + 1)))
    return (a / (a + p))[:, None]


def pca(x, k):
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:k].T


class TestSet:
    def __init__(self, name, split):
        root = f"{SETS}/{name}"
        docs = [json.loads(line) for line in open(f"{root}/corpus.jsonl")]
        queries = {}
        for line in open(f"{root}/queries.jsonl"):
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
        self.judged = collections.defaultdict(dict)
        for i, line in enumerate(open(f"{root}/qrels/{split}.tsv")):
            query, doc, grade = line.rstrip("\n").split("\t")
            if i and int(grade) > 0:
                self.judged[query][doc] = int(grade)
        self.query_ids = [q for q in self.judged if q in queries]
        self.doc_ids = [d["_id"] for d in docs]
        self.docs = self.ids([(d.get("title", "") + "\n\n" + d["text"]).strip() for d in docs])
        self.queries = self.ids([queries[q] for q in self.query_ids])

    @staticmethod
    def ids(texts):
        return [e.ids[:512] for e in TOKENIZER.encode_batch(texts, add_special_tokens=False)]

    @staticmethod
    def embed(table, rows):
        out = np.zeros((len(rows), table.shape[1]), np.float32)
        for i, ids in enumerate(rows):
            if ids:
                out[i] = table[ids].mean(0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def ndcg(self, table):
        scores = self.embed(table, self.queries) @ self.embed(table, self.docs).T
        total = 0.0
        for i, q in enumerate(self.query_ids):
            top = np.argsort(-scores[i])[:10]
            grades = self.judged[q]
            dcg = sum(grades.get(self.doc_ids[j], 0) / np.log2(r + 2) for r, j in enumerate(top))
            ideal = sorted(grades.values(), reverse=True)[:10]
            total += dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal))
        return total / len(self.query_ids)


def main():
    pooled, at_token = token_outputs()
    sets = {
        f"{n}:{s}": TestSet(n, s)
        for n, s in [("scifact", "train"), ("scifact", "test"), ("cranfield", "test"), ("cisi", "test")]
        if os.path.exists(f"{SETS}/{n}/qrels/{s}.tsv")
    }
    variants = {
        "pooled, centred, sif 1e-3 (the recipe before)": (pooled - pooled.mean(0)) * sif(1e-3),
        "pooled, not centred, sif 1e-3": pooled * sif(1e-3),
        "pooled, centred, sif 3e-4": (pooled - pooled.mean(0)) * sif(3e-4),
        "pooled, centred, sif 1e-4": (pooled - pooled.mean(0)) * sif(1e-4),
        "pooled, pca 256, sif 1e-3": pca(pooled, 256) * sif(1e-3),
        "pooled, pca 128, sif 1e-3": pca(pooled, 128) * sif(1e-3),
        "at token, centred, sif 1e-3": (at_token - at_token.mean(0)) * sif(1e-3),
        "at token, centred, sif 3e-4": (at_token - at_token.mean(0)) * sif(3e-4),
        "at token, centred, sif 1e-4 (the recipe now)": (at_token - at_token.mean(0)) * sif(1e-4),
        "at token, pca 256, sif 1e-4": pca(at_token, 256) * sif(1e-4),
    }
    print("| variant | " + " | ".join(sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for name, table in variants.items():
        cells = " | ".join(f"{s.ndcg(table):.3f}" for s in sets.values())
        print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
