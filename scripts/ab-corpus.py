# A deterministic corpus for scripts/ab-sync.sh: N notes (md and txt, 3 to 8 paragraphs of
# vocabulary words), 100 to a folder. Usage: python3 scripts/ab-corpus.py DIR N
import os, random, sys
random.seed(7)
root = sys.argv[1]; n = int(sys.argv[2])
words = "river mountain harbor lantern garden orchard meadow valley bridge tower market library winter summer autumn spring kettle bread copper silver cedar maple willow thunder".split()
for i in range(n):
    d = os.path.join(root, f"f{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    paras = []
    for p in range(random.randint(3, 8)):
        sents = []
        for s in range(random.randint(3, 7)):
            sents.append(" ".join(random.choice(words) for _ in range(random.randint(6, 14))).capitalize() + ".")
        paras.append(" ".join(sents))
    ext = "md" if i % 2 else "txt"
    body = (f"# Note {i}\n\n" if ext == "md" else "") + "\n\n".join(paras) + "\n"
    open(os.path.join(d, f"note-{i:05d}.{ext}"), "w").write(body)
