"""Sampled mutation testing of the critical modules with cosmic-ray, each against its own tests.

Runs in a scratch copy of the tree (cosmic-ray rewrites the module on disk for each mutant), so the working
tree is never touched. For every target: init, operator filter, known equivalents skipped, a seeded random
sample of the rest, a baseline that must pass, execution, then the kill rate and every survivor's diff.

    make mutate                                   # every target
    make mutate MUTATE_ARGS="crypto_signing --sample 0"   # one target, every mutant
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TARGETS = ["matching", "session_service", "crypto_signing", "middleware"]
COPIED = ["backend", "tests", "alembic", "alembic.ini", "pyproject.toml", "mutation"]


@dataclass
class Outcome:
    target: str
    total: int = 0
    equivalent: list[str] = field(default_factory=list)
    annotations: int = 0
    not_sampled: int = 0
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    incompetent: int = 0

    @property
    def tested(self) -> int:
        return self.killed + len(self.survived)

    def summary(self) -> str:
        rate = f"{100 * self.killed / self.tested:.1f}%" if self.tested else "n/a"
        return (
            f"{self.target}: {self.killed}/{self.tested} killed ({rate}); {len(self.survived)} survived; "
            f"{len(self.equivalent)} equivalent and {self.annotations} in annotations excluded; "
            f"{self.not_sampled} not sampled; "
            f"{self.incompetent} incompetent; {self.total} mutants in all"
        )


def scratch_copy() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="tradedesk-mutate-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.sqlite", "*.db")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=ignore)
        else:
            shutil.copy2(source, scratch / name)
    return scratch


def environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEDESK_")}
    # The scratch copy's modules, not the editable install's, are the ones imported and mutated.
    env["PYTHONPATH"] = f"{scratch / 'backend'}{os.pathsep}{scratch}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(args, cwd=cwd, env=env, check=True)  # noqa: S603


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are, when ``from __future__ import annotations`` keeps them from
    ever being evaluated: a mutant there changes nothing at run time."""
    tree = ast.parse(source)
    postponed = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    if not postponed:
        return []
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return [((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in found]


def in_annotation(spans: list[tuple[tuple[int, int], tuple[int, int]]], at: tuple[int, int]) -> bool:
    return any(start <= at < end for start, end in spans)


def source_line(scratch: Path, module: Path, line: int) -> str:
    lines = (scratch / module).read_text().splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def mutate(target: str, *, scratch: Path, sample: int, seed: int) -> Outcome:
    config_path = scratch / "mutation" / f"{target}.toml"
    config = tomllib.loads(config_path.read_text())
    equivalents = config.get("tradedesk", {}).get("equivalent", [])
    session = scratch / f"{target}.sqlite"
    env = environment(scratch)
    bin_dir = Path(sys.executable).parent
    run([str(bin_dir / "cosmic-ray"), "init", str(config_path), str(session)], cwd=scratch, env=env)
    run([str(bin_dir / "cr-filter-operators"), str(session), str(config_path)], cwd=scratch, env=env)
    outcome = Outcome(target)
    with use_db(str(session), WorkDB.Mode.open) as db:
        outcome.total = db.num_work_items
        candidates = []
        spans: dict[Path, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
        for item in db.pending_work_items:
            mutation = item.mutations[0]
            module = Path(mutation.module_path)
            if module not in spans:
                spans[module] = annotation_spans((scratch / module).read_text())
            if in_annotation(spans[module], tuple(mutation.start_pos)):
                outcome.annotations += 1
                db.set_result(
                    item.job_id, WorkResult(output="annotation", worker_outcome=WorkerOutcome.SKIPPED)
                )
                continue
            text = source_line(scratch, mutation.module_path, mutation.start_pos[0])
            why = next(
                (
                    e["why"]
                    for e in equivalents
                    if re.search(e["operator"], mutation.operator_name) and re.search(e["line"], text)
                ),
                None,
            )
            if why is None:
                candidates.append(item.job_id)
                continue
            outcome.equivalent.append(
                f"{mutation.module_path}:{mutation.start_pos[0]} {mutation.operator_name}: {why}"
            )
            db.set_result(item.job_id, WorkResult(output="equivalent", worker_outcome=WorkerOutcome.SKIPPED))
        chosen = set(
            candidates
            if sample <= 0
            else random.Random(seed).sample(candidates, min(sample, len(candidates)))  # noqa: S311 - sampling
        )
        for job_id in candidates:
            if job_id not in chosen:
                outcome.not_sampled += 1
                db.set_result(job_id, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED))
    run([str(bin_dir / "cosmic-ray"), "baseline", str(config_path)], cwd=scratch, env=env)
    run([str(bin_dir / "cosmic-ray"), "exec", str(config_path), str(session)], cwd=scratch, env=env)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if (
                result.test_outcome == TestOutcome.INCOMPETENT
                or result.worker_outcome != WorkerOutcome.NORMAL
            ):
                outcome.incompetent += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                mutation = item.mutations[0]
                outcome.survived.append(
                    f"{mutation.module_path}:{mutation.start_pos[0]} {mutation.operator_name} "
                    f"#{mutation.occurrence}\n{result.diff}"
                )
            else:
                outcome.killed += 1
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"any of {', '.join(TARGETS)} (default: all)"
    )
    parser.add_argument("--sample", type=int, default=80, help="mutants run per target (0: all)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy and its sessions")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    scratch = scratch_copy()
    print(f"scratch copy: {scratch}", flush=True)
    outcomes = []
    try:
        for target in args.targets or TARGETS:
            outcome = mutate(target, scratch=scratch, sample=args.sample, seed=args.seed)
            outcomes.append(outcome)
            print(f"\n== {outcome.summary()}", flush=True)
            for line in outcome.equivalent:
                print(f"   equivalent: {line}")
            for survivor in outcome.survived:
                print(f"   survived: {survivor}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(o.summary() for o in outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
