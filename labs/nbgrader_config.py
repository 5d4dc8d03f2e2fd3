"""nbgrader's configuration for the MiniStack labs: this folder is the course directory.

labs/source/<lab>/<lab>.ipynb are the instructor's versions (solutions inside nbgrader's
solution regions, hidden tests inside the graded cells); `nbgrader generate_assignment
<lab>` makes the student versions in labs/release/, which are committed so that students
need no nbgrader. See docs/teaching.md for releasing, collecting and grading.
"""
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "ministack"
# A lab cell may run a benchmark or wait for a peer namespace: give it time.
c.Execute.timeout = 300
# Students answer in the cells nbgrader marks; these are the placeholders they replace.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
