"""The labs as a course grades them, through nbgrader itself: for every lab the untouched
student version earns no exercise's points, the solution full marks, and each recorded
wrong answer (tests/lab_answers.py) loses exactly its exercise's points; a class of 30
simulated submissions goes through `nbgrader autograde` and `nbgrader export`, and the
grade table is checked line by line; labs/release/ is what `nbgrader generate_assignment`
makes from labs/source/ today."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import need, need_module
from lab_answers import WRONG

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
NAMES = sorted(p.name for p in (LABS / "source").iterdir() if p.is_dir())
ROOT_LABS = {"06-your-own-stack", "07-stacks-side-by-side"}
BULK_LAB = "01-ports-and-the-switch"
BIN = Path(sys.executable).parent
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?",
                      re.S | re.M)


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """nbgrader in the course directory; it runs alembic from PATH, so the venv's first."""
    need(shutil.which("nbgrader", path=str(BIN)), "nbgrader (the test extra, ./setup.sh)")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    r = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env,
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def course_copy(tmp: Path, *labs: str, generated: dict[str, Future[None]] | None = None) -> Path:
    """The course directory's sources, copied (nbgrader writes its gradebook and folders
    there), with `labs` generated as an instructor does before a class: that makes their
    student versions and records their graded cells in the gradebook. Each generated
    version must be the committed labs/release/ one; `generated[lab]` gets the outcome."""
    course = tmp / "course"
    course.mkdir()
    shutil.copy(LABS / "nbgrader_config.py", course)
    shutil.copytree(LABS / "source", course / "source")
    for lab in labs:
        try:
            nbgrader(course, "generate_assignment", lab, "--force")
            assert_release_is_generated(course, lab)
        except BaseException as e:
            if generated is not None:
                generated[lab].set_exception(e)
            raise
        if generated is not None:
            generated[lab].set_result(None)
    return course


def assert_release_is_generated(course: Path, lab: str) -> None:
    made = (course / "release" / lab / f"{lab}.ipynb").read_text()
    committed = (LABS / "release" / lab / f"{lab}.ipynb").read_text()
    assert made == committed, f"labs/release/{lab} is stale: run `nbgrader " \
                              f"generate_assignment {lab} --force` in labs/"
    assert sorted(p.name for p in (course / "release" / lab).iterdir()) == \
        sorted(p.name for p in (LABS / "release" / lab).iterdir()), lab


def cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["cells"]


def grade_id(cell: dict[str, Any]) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def exercises(lab: str) -> dict[str, tuple[str, int]]:
    """Exercise cell grade_id -> (its check cell's grade_id, the check's points)."""
    src = cells(LABS / "source" / lab / f"{lab}.ipynb")
    checks = {grade_id(c): c["metadata"]["nbgrader"]["points"] for c in src
              if c["metadata"].get("nbgrader", {}).get("grade")}
    out = {}
    for c in src:
        gid = grade_id(c)
        if gid and c["metadata"]["nbgrader"].get("solution"):
            check = "check_" + gid.split("_")[0]
            assert check in checks, f"{lab}: exercise {gid} has no check cell {check}"
            out[gid] = (check, checks[check])
    return out


def answered(lab: str, wrong: str | None = None) -> dict[str, Any]:
    """The student version with every exercise answered as the solution does, except
    `wrong`, answered with its recorded wrong answer."""
    sol = {grade_id(c): "".join(c["source"])
           for c in cells(LABS / "source" / lab / f"{lab}.ipynb") if grade_id(c)}
    nb = json.loads((LABS / "release" / lab / f"{lab}.ipynb").read_text())
    for c in nb["cells"]:
        gid = grade_id(c)
        if not gid or not c["metadata"]["nbgrader"].get("solution"):
            continue

        def fill(m: re.Match[str]) -> str:
            if gid != wrong:
                return m.group(2)
            return "".join(m.group(1) + line + "\n" for line in WRONG[lab][gid].split("\n"))

        c["source"] = SOLUTION.sub(fill, sol[gid])
    return nb


def untouched(lab: str) -> dict[str, Any]:
    return json.loads((LABS / "release" / lab / f"{lab}.ipynb").read_text())


def submit(course: Path, lab: str, student: str, nb: dict[str, Any]) -> None:
    d = course / "submitted" / student / lab
    d.mkdir(parents=True)
    (d / f"{lab}.ipynb").write_text(json.dumps(nb))


def scores(course: Path, lab: str) -> dict[str, dict[str, float]]:
    """student -> {check cell grade_id: score} from the gradebook autograde filled."""
    api = need_module("nbgrader.api")
    with api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        out = {}
        for s in gb.students:
            nb = gb.find_submission_notebook(lab, lab, s.id)
            out[s.id] = {g.name: g.score for g in nb.grades}
        return out


def cleanup_namespaces(lab: str) -> None:
    """A lab that failed half-way never reached its clean-up cell. Only its own namespace:
    another lab may be running beside it."""
    if lab in ROOT_LABS and os.geteuid() == 0:
        import ministack as ms
        n = int(lab[:2])
        ms.Topology(ns=f"ms-lab{n}", host_if=f"ms-lab{n}h").down()


def test_every_lab_has_a_source_a_release_and_a_wrong_answer_per_exercise() -> None:
    assert len(NAMES) == 7, NAMES
    assert sorted(WRONG) == NAMES
    for lab in NAMES:
        assert (LABS / "release" / lab / f"{lab}.ipynb").exists(), lab
        assert sorted(WRONG[lab]) == sorted(exercises(lab)), lab
        for path in (LABS / "source" / lab / f"{lab}.ipynb",
                     LABS / "release" / lab / f"{lab}.ipynb"):
            raw = json.loads(path.read_text())
            assert raw["metadata"]["kernelspec"]["name"] == "python3"
            assert all(not c.get("outputs") for c in raw["cells"] if c["cell_type"] == "code"), \
                f"{path} is committed with outputs"
        text = (LABS / "release" / lab / f"{lab}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, lab


def expected_grades(lab: str, kind: str) -> dict[str, float]:
    """Check cell -> points a submission of this kind earns: all for the solution, none
    for the untouched student version, all but its exercise's for a wrong answer."""
    ex = exercises(lab)
    full = {check: float(pts) for check, pts in ex.values()}
    if kind == "solution":
        return full
    if kind == "untouched":
        return {check: 0.0 for check in full}
    return dict(full, **{ex[kind][0]: 0.0})


def submission(lab: str, kind: str) -> dict[str, Any]:
    if kind == "untouched":
        return untouched(lab)
    return answered(lab, wrong=None if kind == "solution" else kind)


def grade_lab(tmp: Path, lab: str, generated: dict[str, Future[None]] | None = None
              ) -> dict[str, dict[str, float]]:
    """The untouched version, the solution and each wrong answer of one lab, autograded."""
    course = course_copy(tmp, lab, generated=generated)
    for kind in ["untouched", "solution", *exercises(lab)]:
        submit(course, lab, kind.replace("_", "-"), submission(lab, kind))
    try:
        nbgrader(course, "autograde", lab, "--create", "--force")
    finally:
        cleanup_namespaces(lab)
    return scores(course, lab)


def class_kinds() -> dict[str, str]:
    """30 students handing in lab 01: solutions, untouched versions and each recorded wrong
    answer, in turn."""
    kinds = ["solution", "untouched", *exercises(BULK_LAB)]
    return {f"s{i:02d}": kinds[i % len(kinds)] for i in range(30)}


def grade_class(tmp: Path, generated: dict[str, Future[None]] | None = None
                ) -> tuple[dict[str, dict[str, float]], list[dict[str, str]]]:
    """The class of 30 through `nbgrader autograde`, then `nbgrader export`'s table."""
    lab = BULK_LAB
    course = course_copy(tmp, lab, generated=generated)
    for student, kind in class_kinds().items():
        submit(course, lab, student, submission(lab, kind))
    nbgrader(course, "autograde", lab, "--create", "--force")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv", newline="") as f:
        return scores(course, lab), list(csv.DictReader(f))


GRADED = "test_autograde_untouched_solution_and_each_wrong_answer"
CLASS = "test_a_class_of_30_through_autograde_and_the_exported_grade_table"
RELEASE = "test_release_is_what_generate_assignment_makes_from_source_today"


@dataclass
class Runs:
    """The module's nbgrader runs: each test's outcome, and each lab's generation."""

    runs: dict[str, Future[Any]]
    generated: dict[str, Future[None]]

    def __getitem__(self, name: str) -> Future[Any]:
        return self.runs[name]


@pytest.fixture(scope="module")
def graded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """The nbgrader runs this session's selected tests need, two at a time (this machine
    has two cores, and one run leaves the second mostly idle while a kernel starts or a
    cell waits): each in its own course directory and gradebook, each lab in its own
    namespace, so they cannot meet. Longest first. A test waits for its own run's result.
    Every run generates its lab's student version and compares it with labs/release/;
    the release check generates only the labs no other run does."""
    mine = [item for item in request.session.items  # doctests are items too, without names
            if getattr(item, "module", None) is request.module
            and getattr(item, "originalname", None) in (GRADED, CLASS, RELEASE)]
    wanted = [item.callspec.params["lab"] if item.originalname == GRADED else item.originalname
              for item in mine]
    wanted = [w for w in wanted if w not in ROOT_LABS or os.geteuid() == 0]
    covered = {BULK_LAB if w == CLASS else w for w in wanted if w != RELEASE}
    generated: dict[str, Future[None]] = {lab: Future() for lab in NAMES}
    jobs = {CLASS: lambda tmp: grade_class(tmp, generated),
            RELEASE: lambda tmp: course_copy(tmp, *(n for n in NAMES if n not in covered),
                                             generated=generated)}
    order = [CLASS, *reversed(NAMES), RELEASE]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {w: pool.submit(jobs.get(w, lambda tmp, lab=w: grade_lab(tmp, lab, generated)),
                               tmp_path_factory.mktemp(w[:12]))
                for w in sorted(wanted, key=order.index)}
        try:
            yield Runs(runs, generated)
        finally:
            for run in runs.values():
                run.cancel()


# Lab 01 is graded by the class of 30 below, which holds each of its kinds several times.
@pytest.mark.slow
@pytest.mark.parametrize("lab", [n for n in NAMES if n != BULK_LAB])
def test_autograde_untouched_solution_and_each_wrong_answer(
        lab: str, graded: Runs) -> None:
    if lab in ROOT_LABS:
        need(os.geteuid() == 0, f"root for {lab} (CI runs as root)")
    got = graded[lab].result()
    for kind in ["untouched", "solution", *exercises(lab)]:
        assert got[kind.replace("_", "-")] == expected_grades(lab, kind), (kind, got)


@pytest.mark.slow
def test_a_class_of_30_through_autograde_and_the_exported_grade_table(graded: Runs) -> None:
    """Every cell's grade is right, and so is every line of grades.csv."""
    lab = BULK_LAB
    got, rows = graded[CLASS].result()
    students = class_kinds()
    for student, kind in students.items():
        assert got[student] == expected_grades(lab, kind), (student, kind, got[student])
    expected = {s: sum(expected_grades(lab, k).values()) for s, k in students.items()}
    total = sum(expected_grades(lab, "solution").values())
    assert len(rows) == 30, rows
    for row in rows:
        assert row["assignment"] == lab, row
        assert float(row["max_score"]) == total, row
        assert float(row["raw_score"]) == float(row["score"]) == expected[row["student_id"]], row
    assert sorted(r["student_id"] for r in rows) == sorted(expected)


def test_release_is_what_generate_assignment_makes_from_source_today(graded: Runs) -> None:
    """Every lab: generated by nbgrader today, the same as labs/release/ (by the runs above
    where they run, by this test's own for the rest: labs 06 and 07 need root)."""
    graded[RELEASE].result()
    for lab in NAMES:
        graded.generated[lab].result()
