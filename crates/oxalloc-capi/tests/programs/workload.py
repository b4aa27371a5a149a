# An allocation-heavy Python workload with deterministic output: objects, dicts, strings,
# sorting, JSON, regular expressions, and a thread pool.
import hashlib
import json
import re
import threading
from collections import Counter, defaultdict

records = [{"id": i, "name": "user%05d" % i, "tags": ["t%d" % (i % 17), "g%d" % (i % 5)], "score": (i * 7919) % 1000}
           for i in range(60000)]
by_tag = defaultdict(list)
for r in records:
    for t in r["tags"]:
        by_tag[t].append(r["id"])
text = json.dumps(records)
back = json.loads(text)
words = Counter(re.findall(r"user0*(\d)", text))
ranked = sorted(back, key=lambda r: (-r["score"], r["name"]))[:5]

results = [None] * 4
def work(k):
    results[k] = sum(len(str(x) * 3) for x in range(k, 200000, 4))
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()

print(len(text), hashlib.sha256(text.encode()).hexdigest())
print(sorted(words.items())[:5])
print([r["name"] for r in ranked])
print({k: len(v) for k, v in sorted(by_tag.items())[:6]})
print(results)
