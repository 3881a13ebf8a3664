#!/usr/bin/env python3
"""Baseline for `imdb-train bench ingest`: what a Python user does with the standard library alone.

Reads the aclImdb archive (.tar.gz via tarfile) or directory, lowercases each review, removes `<br />`,
tokenizes with torchtext's basic-English-like regex and counts the vocabulary, single-threaded.
Prints one JSON line: {"reviews", "tokens", "types", "seconds", "cpu_seconds"}.
"""
import collections
import json
import os
import re
import sys
import tarfile
import time

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
REVIEW = re.compile(r"(?:^|/)(train|test)/(pos|neg)/\d+_\d+\.txt$")


def texts(path):
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for name in sorted(files):
                full = os.path.join(root, name)
                if REVIEW.search(full.replace(os.sep, "/")):
                    with open(full, "rb") as f:
                        yield f.read()
        return
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and REVIEW.search(member.name):
                yield tar.extractfile(member).read()


def main():
    path = sys.argv[1]
    start = time.perf_counter()
    cpu_start = time.process_time()
    counts = collections.Counter()
    reviews = tokens = 0
    for raw in texts(path):
        text = raw.decode("utf-8", errors="replace").lower().replace("<br />", " ")
        toks = TOKEN.findall(text)
        counts.update(toks)
        reviews += 1
        tokens += len(toks)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    print(json.dumps({"reviews": reviews, "tokens": tokens, "types": len(counts), "seconds": seconds, "cpu_seconds": cpu_seconds}))


if __name__ == "__main__":
    main()
