#!/usr/bin/env python3
"""Word error rate of what the server heard on an agent-test report.

    benches/recognition_wer.py REPORT.json [REPORT.json ...]

For each report (from `voxgate test --json`): the recogniser's word error
rate over every turn (what the caller said against the call log's caller
line), and how many turns it heard without a single error.
"""
import json
import re
import sys


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


for path in sys.argv[1:]:
    report = json.load(open(path))
    errors = total = exact = turns = 0
    for case in report["cases"]:
        for turn in case["turns"]:
            said, heard = words(turn["said"]), words(turn.get("transcribed_as") or "")
            errors += distance(said, heard)
            total += len(said)
            exact += said == heard
            turns += 1
    print(f"{path}: WER {100 * errors / max(total, 1):.1f} % ({errors}/{total} words), "
          f"{exact}/{turns} turns heard exactly")
