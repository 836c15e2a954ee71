"""The cost of trusted grading: 20 submissions graded by plain ``nbgrader autograde`` and by
``cnncourse grade`` (jailed), on one machine; prints the wall time per submission and the ratio.

Run by hand (it takes minutes), from the repository root::

    .venv/bin/python tests/bench_grading.py [--rounds 1] [--timeout 60] [--out table.md]

The submissions are 20 cases of the hostile corpus (tests/hostile/), ten of each exercise, honest
and hostile, chosen among those that are safe to run WITHOUT a jail (no daemon, nothing written
outside the course folder) and that end within the timeout: plain nbgrader runs them with the
rights of whoever runs the benchmark. Each grader gets its own temporary course with the same
notebooks: the plain one receives them already collected (`collect`, untimed; nbgrader alone
would skip a misnamed one), `cnncourse grade` collects them itself (timed). The plain time is
``nbgrader autograde`` alone; the jailed time is the whole command (collect, jailed autograde
with the judge, feedback, export, audit), so the ratio is an upper bound. The two graders take
turns (which one goes first changes with each assignment and each round: use ``--rounds 2``),
so that a change in the machine's load hits both; each round's times are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import test_hostile as corpus  # noqa: E402 (the corpus' builder, in tests/)

from cnncourse.grading.collect import collect  # noqa: E402

CASES = (
    # ex01_convolution
    "z_honest_ex01", "honest_copy_of", "os_exit", "input_transformer", "helper_replaced",
    "fake_judge", "exec_solutions", "aten_other_names", "harvester_ex01", "memory_hog",
    # ex03_pooling
    "z_honest_ex03", "honest_lms", "exit_call", "ast_transformer", "helper_wrapped",
    "guard_popped", "pool3d_variant", "adaptive_variant", "harvester_ex03", "honest_setup_deleted",
)  # fmt: skip
BIN = Path(sys.executable).parent


def course_with(folder: Path, assignment: str) -> Path:
    """A course with the assignment generated (gradebook, release) and its cases handed in."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions" / assignment, folder / "solutions" / assignment)
    command(folder, BIN / "nbgrader", "generate_assignment", assignment)
    for case in CASES:
        if corpus.MANIFEST[case]["assignment"] == assignment:
            corpus.hand_in(folder, case)
    return folder


def command(course: Path, *args: object) -> float:
    """Run a command in `course`; its wall time in seconds."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    run = subprocess.run(
        [str(a) for a in args], cwd=course, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if run.returncode not in (0, 1):  # nbgrader exits 1 when a submission failed
        raise RuntimeError(f"{args} failed:\n{(run.stdout + run.stderr)[-3000:]}")
    return seconds


def one_round(base: Path, timeout: int, plain_first: bool = True) -> dict[str, float]:
    """Seconds of each grader over all the cases, one course per grader and assignment; the two
    graders take turns (`plain_first`: which one starts the first assignment, then they swap)."""
    spent = {"nbgrader autograde": 0.0, "cnncourse grade": 0.0}
    for i, assignment in enumerate(corpus.ASSIGNMENTS):
        plain = course_with(base / "plain" / assignment, assignment)
        collect(plain, assignment)  # what nbgrader would not find by itself
        jailed = course_with(base / "jailed" / assignment, assignment)
        runs = {
            "nbgrader autograde": [
                plain, BIN / "nbgrader", "autograde", assignment, f"--Execute.timeout={timeout}"
            ],
            "cnncourse grade": [
                jailed, BIN / "cnncourse", "grade", assignment, "--course", jailed,
                "--timeout", timeout,
            ],
        }  # fmt: skip
        for name in list(runs) if plain_first == (i % 2 == 0) else list(runs)[::-1]:
            spent[name] += command(*runs[name])
    return spent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{platform.node()}, {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    load = os.getloadavg()
    started = datetime.now(timezone.utc)
    totals = {"nbgrader autograde": 0.0, "cnncourse grade": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as folder:
        for r in range(args.rounds):
            spent = one_round(Path(folder) / f"round{r}", args.timeout, plain_first=r % 2 == 0)
            for name, seconds in spent.items():
                totals[name] += seconds
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()))
    n = len(CASES) * args.rounds
    plain, jailed = totals["nbgrader autograde"] / n, totals["cnncourse grade"] / n
    after = os.getloadavg()
    lines = [
        f"machine: {machine()}",
        f"date: {started:%Y-%m-%d %H:%M} UTC; load average (1, 5, 15 min) before "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, after {after[0]:.1f} {after[1]:.1f} "
        f"{after[2]:.1f}",
        f"{len(CASES)} submissions (tests/hostile: honest and hostile) x {args.rounds} round(s)",
        "",
        "| grader | wall time, all | per submission |",
        "|---|---|---|",
        f"| nbgrader autograde (no jail) | {totals['nbgrader autograde']:.0f} s | {plain:.1f} s |",
        f"| cnncourse grade (jail, judge, feedback, export) | {totals['cnncourse grade']:.0f} s "
        f"| {jailed:.1f} s |",
        "",
        f"ratio: {jailed / plain:.2f}x (target: at most 1.5x)",
    ]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
