"""Time a whole Snakemake run and each of its jobs, from Snakemake's own console output.

    python bench/job_times.py [--json FILE] -- snakemake --cores 1 ...

Runs the command (without -q: the job lines are needed), stamps every line of its output as it
arrives, and prints the wall time, then one row per rule: jobs, seconds of all its jobs
together, the shortest and longest job. A job's seconds run from the line that starts it
(``rule X:`` / ``localrule X:`` with its ``jobid``) to ``Finished jobid``; with several cores
jobs overlap, so the rules' seconds add up to more than the wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import defaultdict

STARTS = re.compile(r"^(?:local)?(?:checkpoint|rule) (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def job_seconds(stamped: list[tuple[float, str]]) -> list[tuple[str, float, float]]:
    """(rule, seconds, start) of every finished job in a stamped console output."""
    rule, started, jobs = None, {}, []
    for when, line in stamped:
        if match := STARTS.match(line):
            rule, rule_seen = match.group(1), when
        elif (match := JOBID.match(line)) and rule:
            started[match.group(1)] = (rule, rule_seen)
            rule = None
        elif match := FINISHED.match(line):
            name, start = started.pop(match.group(1), (match.group(2), None))
            if start is not None:
                jobs.append((name, when - start, start))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    stamped = []
    for line in process.stdout:
        stamped.append((time.perf_counter(), line.rstrip("\n")))
    code = process.wait()
    wall = time.perf_counter() - start
    jobs = job_seconds(stamped)
    by_rule = defaultdict(list)
    for rule, seconds, _ in jobs:
        by_rule[rule].append(seconds)
    if code:
        print("\n".join(line for _, line in stamped[-40:]))
    print(f"exit {code}; wall {wall:.2f} s; {len(jobs)} jobs")
    print(f"{'rule':<20} {'jobs':>4} {'sum s':>7} {'min s':>6} {'max s':>6}")
    for rule, seconds in by_rule.items():
        print(
            f"{rule:<20} {len(seconds):>4} {sum(seconds):>7.2f} "
            f"{min(seconds):>6.2f} {max(seconds):>6.2f}"
        )
    if args.json:
        with open(args.json, "w") as out:
            timeline = [
                {"rule": rule, "start_s": begun - start, "seconds": seconds}
                for rule, seconds, begun in jobs
            ]
            json.dump({"wall_s": wall, "exit": code, "jobs": timeline}, out, indent=1)
    sys.exit(code)


if __name__ == "__main__":
    main()
