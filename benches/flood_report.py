"""Prints what an INVITE flood got back, from SIPp's -trace_stat CSV."""
import csv
import sys

rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
head, last = rows[0], rows[-1]
get = lambda name: last[head.index(name)] if name in head else "?"
print(
    f"flood: {get('TotalCallCreated')} INVITEs from 127.0.0.2; {get('SuccessfulCall(C)')} answered, "
    f"{get('FailedCall(C)')} failed (refused or unanswered), "
    f"{get('FailedUnexpectedMessage(C)')} got an error response, {get('FailedMaxUDPRetrans(C)')} got no answer"
)
