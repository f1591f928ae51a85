"""Prints what an INVITE flood got back, from SIPp's -trace_stat CSVs (one per source)."""
import csv
import sys

totals = {}
names = [
    "TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)",
    "FailedUnexpectedMessage(C)", "FailedMaxUDPRetrans(C)",
]
for path in sys.argv[1:]:
    rows = list(csv.reader(open(path), delimiter=";"))
    head, last = rows[0], rows[-1]
    for name in names:
        if name in head:
            totals[name] = totals.get(name, 0) + int(last[head.index(name)])
get = lambda name: totals.get(name, "?")
sources = len(sys.argv) - 1
print(
    f"flood: {get('TotalCallCreated')} INVITEs from {sources} address{'es' if sources > 1 else ''}; "
    f"{get('SuccessfulCall(C)')} answered, {get('FailedCall(C)')} failed (refused or unanswered), "
    f"{get('FailedUnexpectedMessage(C)')} got an error response, {get('FailedMaxUDPRetrans(C)')} got no answer"
)
