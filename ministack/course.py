"""`ministack course`: a class on one machine. `env` makes the students' environment (a
virtual environment every student can read, with MiniStack, its lab and JupyterHub's
single-user server); `serve` runs JupyterHub for local accounts on it
(ministack/jupyterhub_config.py says what the hub does). docs/teaching.md has the rest.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = Path(__file__).resolve().parent / "jupyterhub_config.py"
# What a student's server imports: checked as an unprivileged user before serving.
STUDENT_MODULES = "ministack, jupyterhub, jupyterlab, ipywidgets, bokeh, jupyter_bokeh, scapy"


class CourseError(Exception):
    """What stops the class server, and what to do about it."""


def release_notebooks(release: Path) -> dict[str, str]:
    """The student versions (labs/release/<lab>/<lab>.ipynb), by file name."""
    return {nb.name: nb.read_text() for nb in sorted(release.glob("*/*.ipynb"))}


def student_labs(notebooks: dict[str, str], into: Path) -> list[str]:
    """Write the student versions into one flat folder, each only if no file of that name
    is there (it holds the student's work, and a symlink there is not followed); returns
    the names written. A lab added to the course later arrives on the next run.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> student_labs({"01.ipynb": "{}"}, d), student_labs({"01.ipynb": "{}"}, d)
    (['01.ipynb'], [])
    """
    into.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in notebooks.items():
        try:
            with open(into / name, "x") as f:
                f.write(text)
        except FileExistsError:
            continue
        written.append(name)
    return written


def proxy_command() -> str | None:
    """JupyterHub's proxy: the one ./setup.sh put in this environment, else one on PATH."""
    mine = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    try:
        if mine.exists():
            return str(mine)
    except OSError:  # an environment in root's home, asked by another user: not theirs
        pass
    return shutil.which("configurable-http-proxy")


def make_env(env: Path, python: str = "/usr/bin/python3") -> None:
    """Create the students' environment at env: a virtual environment of a system Python
    (a student cannot run one under root's home), with this checkout and its lab, and
    JupyterHub's single-user server, every file readable by every user.

    >>> try:
    ...     make_env(Path("/opt/ministack-course"), python="/usr/bin/python2")
    ... except CourseError as e:
    ...     print(e)
    /usr/bin/python2 does not exist: pass --python, a Python 3.11+ every user can run
    """
    if not Path(python).exists():
        raise CourseError(f"{python} does not exist: pass --python, a Python 3.11+ every "
                          f"user can run")
    if not (ROOT / "pyproject.toml").exists():
        raise CourseError(f"MiniStack here is not a checkout ({ROOT}): make the students' "
                          f"environment from one (./setup.sh), or create a venv at {env} "
                          f"and pip install 'ministack[lab]' 'jupyterhub>=5,<7' into it")
    old = os.umask(0o022)
    try:
        subprocess.run([python, "-m", "venv", str(env)], check=True)
        pip = [str(env / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True)
        subprocess.run(pip + [f"{ROOT}[lab]", "jupyterhub>=5,<7"], check=True)
    finally:
        os.umask(old)


def check_env(env: Path) -> None:
    """Raise CourseError unless an ordinary user can run the students' server from env."""
    py = env / "bin" / "python"
    if not (env / "bin" / "jupyterhub-singleuser").exists():
        raise CourseError(f"no students' environment at {env}: make it with "
                          f"'ministack course env {env}'")
    r = subprocess.run(["runuser", "-u", "nobody", "--", str(py), "-c",
                        f"import {STUDENT_MODULES}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise CourseError(f"an ordinary user cannot use {env}: "
                          f"{(r.stderr.strip().splitlines() or ['?'])[-1]} (make it again "
                          f"with 'ministack course env {env}', outside any user's home)")


def serve(env: Path, state: Path, ip: str, port: int, group: str | None) -> int:
    """Run JupyterHub for the class (replaces this process)."""
    if os.geteuid() != 0:
        raise CourseError("the class server starts each student's server as that student: "
                          "run it as root (sudo)")
    hub = shutil.which("jupyterhub", path=os.path.dirname(sys.executable))
    if hub is None:
        raise CourseError("JupyterHub is not installed here: pip install 'ministack[course]'")
    proxy = proxy_command()
    if proxy is None:
        raise CourseError(f"JupyterHub's proxy is missing: npm install --prefix {sys.prefix} "
                          f"configurable-http-proxy (./setup.sh does; it needs nodejs, npm)")
    release = ROOT / "labs" / "release"
    if not release.is_dir():
        raise CourseError(f"no student versions at {release}")
    check_env(env)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.update(MINISTACK_COURSE_ENV=str(env), MINISTACK_COURSE_LABS=str(release),
                      MINISTACK_COURSE_STATE=str(state),
                      MINISTACK_COURSE_BIND=f"http://{ip}:{port}",
                      MINISTACK_COURSE_PROXY=proxy)
    if group:
        os.environ["MINISTACK_COURSE_GROUP"] = group
    print(f"MiniStack course: students open http://{'localhost' if ip == '127.0.0.1' else ip}"
          f":{port}/ and log in with their own accounts", flush=True)
    os.chdir(state)
    os.execv(hub, [hub, "-f", str(HUB_CONFIG)])
    return 0  # not reached
