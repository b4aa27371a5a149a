# Python benchmark workload: an allocation-heavy script (objects, dicts, strings, lists, JSON),
# with deterministic output. Python's small objects come from its own pools, but dicts, lists,
# strings above 512 bytes and the pools themselves come from malloc.
import json

def run():
    total = 0
    for rnd in range(6):
        rows = [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5), "blob": "x" * (i % 900)}
                for i in range(40000)]
        index = {}
        for r in rows:
            index.setdefault(r["name"][-2:], []).append(r)
        text = json.dumps(rows[: 10000])
        back = json.loads(text)
        words = " ".join(r["name"] for r in rows).split()
        words.sort(reverse=rnd % 2 == 0)
        total += len(text) + len(back) + len(index) + len(words[0])
        del rows, index, back, words
    print(total)

run()
