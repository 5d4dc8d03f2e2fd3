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


def course_copy(tmp: Path, *labs: str) -> Path:
    """The course directory's sources, copied (nbgrader writes its gradebook and folders
    there), with `labs` generated as an instructor does before a class: that makes their
    student versions and records their graded cells in the gradebook. Each generated
    version must be the committed labs/release/ one."""
    course = tmp / "course"
    course.mkdir()
    shutil.copy(LABS / "nbgrader_config.py", course)
    shutil.copytree(LABS / "source", course / "source")
    for lab in labs:
        nbgrader(course, "generate_assignment", lab, "--force")
        assert_release_is_generated(course, lab)
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


def cleanup_namespaces() -> None:
    """A lab that failed half-way never reached its clean-up cell."""
    if os.geteuid() == 0:
        import ministack as ms
        for n in (6, 7):
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


# Lab 01 is graded by the class of 30 below, which holds each of its kinds several times.
@pytest.mark.slow
@pytest.mark.parametrize("lab", [n for n in NAMES if n != BULK_LAB])
def test_autograde_untouched_solution_and_each_wrong_answer(lab: str, tmp_path: Path) -> None:
    if lab in ROOT_LABS:
        need(os.geteuid() == 0, f"root for {lab} (CI runs as root)")
    course = course_copy(tmp_path, lab)
    kinds = ["untouched", "solution", *exercises(lab)]
    for kind in kinds:
        submit(course, lab, kind.replace("_", "-"), submission(lab, kind))
    try:
        nbgrader(course, "autograde", lab, "--create", "--force")
    finally:
        cleanup_namespaces()
    got = scores(course, lab)
    for kind in kinds:
        assert got[kind.replace("_", "-")] == expected_grades(lab, kind), (kind, got)


@pytest.mark.slow
def test_a_class_of_30_through_autograde_and_the_exported_grade_table(tmp_path: Path) -> None:
    """30 students hand in lab 01: solutions, untouched versions and each recorded wrong
    answer, in turn. Every cell's grade is right, and so is every line of grades.csv."""
    lab = BULK_LAB
    course = course_copy(tmp_path, lab)
    kinds = ["solution", "untouched", *exercises(lab)]
    students = {f"s{i:02d}": kinds[i % len(kinds)] for i in range(30)}
    for student, kind in students.items():
        submit(course, lab, student, submission(lab, kind))
    nbgrader(course, "autograde", lab, "--create", "--force")
    got = scores(course, lab)
    for student, kind in students.items():
        assert got[student] == expected_grades(lab, kind), (student, kind, got[student])
    expected = {s: sum(expected_grades(lab, k).values()) for s, k in students.items()}
    total = sum(expected_grades(lab, "solution").values())
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30, rows
    for row in rows:
        assert row["assignment"] == lab, row
        assert float(row["max_score"]) == total, row
        assert float(row["raw_score"]) == float(row["score"]) == expected[row["student_id"]], row
    assert sorted(r["student_id"] for r in rows) == sorted(expected)


def test_release_is_what_generate_assignment_makes_from_source_today(tmp_path: Path) -> None:
    """Every lab: course_copy() generates and compares (the graded tests do it too, but
    they need root for labs 06 and 07, and this must hold everywhere)."""
    course_copy(tmp_path, *NAMES)
