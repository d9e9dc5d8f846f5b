"""Benchmark: how long a command takes from the shell prompt to its answer.

Owns measuring the start-up of the commands an on-call engineer and a hotline operator type
over and over — ``notifier --help``, ``notifier incident show INC-1``, ``notifier hotline
lookup …`` — each as a fresh ``python -m notifier`` process (the way a user runs it), on a
small SQLite database prepared here, N times each; prints the median and the spread against
the goals (0.3 s for ``--help``, 0.6 s for the others) next to the floor the chosen stack sets (a
bare ``python -c "import typer, sqlmodel"``), and the ten modules that cost the most to import
(``python -X importtime``) for each command; and what each further caller costs an operator
who keeps ``notifier hotline lookup -`` open (400 callers typed against 1). Prints one table.

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOALS = {"--help": 0.3, "incident show": 0.6, "hotline lookup": 0.6}
# What any command that reads the database must import before it does anything of its own: the
# stack we keep (typer for the command line, SQLModel over SQLAlchemy and pydantic for the
# database). Its own start-up is the floor under the 0.6 s goal.
FLOORS = {"`import typer, sqlmodel` (the stack alone)": "import typer, sqlmodel"}


def prepare(directory: Path) -> dict[str, str]:
    """A project with a few subscribers and one open incident; the environment to run it in."""
    sys.path.insert(0, str(REPO))
    from notifier.demo import write_demo_config

    config = write_demo_config(directory, 1025, database_url=f"sqlite:///{directory / 'startup.db'}", connections=1)
    env = {**os.environ, "NOTIFIER_CONFIG": str(config), "NOTIFIER_SECRET": secrets.token_urlsafe(24),
           "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(directory / "pycache")}  # fmt: skip
    # Measured as an installed copy runs: with its bytecode. A shell that sets
    # PYTHONDONTWRITEBYTECODE (this sandbox does) would otherwise compile every one of our
    # modules from source on every start; the bytecode goes to the temp dir, not the checkout.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    csv = directory / "subscribers.csv"
    csv.write_text(
        "external_id,name,email,phone,region,services,locale\n"
        + "".join(f"ACC-{n:04d},Абонент {n},a{n}@example.org,+7912{n:07d},66,tax-reporting,ru\n" for n in range(1, 201)),
        encoding="utf-8",
    )
    for args in (["init"], ["subscribers", "import", str(csv)],
                 ["incident", "declare", "--title", "Сбой", "--region", "66", "--message", "Ищем"]):  # fmt: skip
        subprocess.run([sys.executable, "-m", "notifier", *args], env=env, check=True, capture_output=True)
    return env


COMMANDS = {
    "--help": ["--help"],
    "incident show": ["incident", "show", "INC-1"],
    "hotline lookup": ["hotline", "lookup", "+79120000042"],
}


def timed(env: dict[str, str], args: list[str], typed: str | None = None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "notifier", *args], env=env, check=True, capture_output=True,
                   input=typed, text=True)  # fmt: skip
    return time.perf_counter() - started


# An operator who keeps `notifier hotline lookup -` open for a shift types one caller a line.
DESK_CALLERS = [f"+7912{n:07d}" for n in range(1, 201)] * 2  # 400 callers, every subscriber twice


def desk_lookup(env: dict[str, str]) -> float:
    """Seconds each further caller costs in an open `hotline lookup -`: (400 callers - 1) / 399."""
    one = timed(env, ["hotline", "lookup", "-"], DESK_CALLERS[0] + "\n")
    many = timed(env, ["hotline", "lookup", "-"], "\n".join(DESK_CALLERS) + "\n")
    return max(many - one, 0.0) / (len(DESK_CALLERS) - 1)


def heaviest_imports(env: dict[str, str], args: list[str], top: int = 10) -> list[tuple[str, float]]:
    """The top-level packages whose import took the longest (cumulative, seconds)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "notifier", *args], env=env,
                         capture_output=True, text=True)  # fmt: skip
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 1:  # a module imported from the top, not a dependency
            totals[match.group(3)] = max(totals.get(match.group(3), 0.0), int(match.group(1)) / 1e6)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="notifier-startup-") as tmp:
        env = prepare(Path(tmp))
        rows = []
        for name, command in COMMANDS.items():
            timed(env, command)  # warm the file cache and the bytecode
            runs = sorted(timed(env, command) for _ in range(args.runs))
            rows.append((name, statistics.median(runs), runs[0], runs[-1], heaviest_imports(env, command)))
        desk_lookup(env)
        desk = sorted(desk_lookup(env) for _ in range(args.runs))
        bare = sorted(_python(env) for _ in range(args.runs))
        floors = {label: sorted(_python(env, code) for _ in range(args.runs)) for label, code in FLOORS.items()}
    print(f"\nstart-up of a fresh `python -m notifier …`, {args.runs} runs each (the interpreter alone: "
          f"median {statistics.median(bare):.3f} s)\n")
    print("| command | median s | fastest s | slowest s | goal s | median / goal |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, median, fastest, slowest, _ in rows:
        goal = GOALS[name]
        print(f"| notifier {name} | {median:.3f} | {fastest:.3f} | {slowest:.3f} | {goal:.1f} | {median / goal:.2f} |")
    print(f"| notifier hotline lookup -, each further caller | {statistics.median(desk):.3f} | {desk[0]:.3f} | "
          f"{desk[-1]:.3f} | 0.6 | {statistics.median(desk) / 0.6:.2f} |")
    for label, runs in floors.items():
        median = statistics.median(runs)
        print(f"| floor: {label} | {median:.3f} | {runs[0]:.3f} | {runs[-1]:.3f} | 0.6 | {median / 0.6:.2f} |")
    for name, *_, heavy in rows:
        print(f"\nheaviest imports of `notifier {name}`: " + ", ".join(f"{mod} {s:.3f} s" for mod, s in heavy))


def _python(env: dict[str, str], code: str = "pass") -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
