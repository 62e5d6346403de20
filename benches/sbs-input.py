#!/usr/bin/env python3
"""The side-by-side benchmark's input, as ../shared/bench/flink-agents-sbs
makes it: N JSON lines over 100 keys, each a ~10-word sentence from a fixed
vocabulary (seeded, so every run reads the same events).
Usage: benches/sbs-input.py N FILE"""

import json
import random
import sys

n, path = int(sys.argv[1]), sys.argv[2]
random.seed(1)
words = "the quick brown fox jumps over a lazy dog while cats sleep near warm fires".split()
with open(path, "w") as f:
    for i in range(n):
        f.write(json.dumps({"key": f"k{i % 100}", "payload": " ".join(random.choice(words) for _ in range(10))}) + "\n")
