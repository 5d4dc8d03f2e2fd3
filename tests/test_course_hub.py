"""A class on one machine: `ministack course env` and `ministack course serve`, then five
local users log in through the hub's API (PAM, their passwords), each gets their own
server, as themselves, with the student versions in their home; all five run lab 01 and
lab 03, answered, in their own kernels at the same time; no student's switch sees another's
ports; and grading their notebooks gives five rows per lab."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import need, need_root
from test_course import BIN, LABS, answered, course_copy, nbgrader, submit

USERS = [f"ms-stu{i}" for i in range(1, 6)]
RUN = ["01-ports-and-the-switch", "03-spoofing-and-the-filter"]


def api(base: str, path: str, token: str | None = None, method: str = "GET",
        body: Any = None) -> Any:
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
    return json.loads(text) if text else None


def login(base: str, user: str, password: str) -> str:
    """Log in on the hub's login form, as a browser does (the hub learns of the account
    then), and return an API token for the student from the hub's API."""
    import http.cookiejar
    import re
    import urllib.parse

    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kw: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    page = opener.open(base + "/hub/login", timeout=60).read().decode()
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf})
    try:
        opener.open(base + "/hub/login?next=", data=form.encode(), timeout=60)
    except urllib.error.HTTPError as e:
        assert e.code == 302, f"{user}: the login form answered {e.code}"
    assert any(c.name.startswith("jupyterhub-hub-login") for c in jar), f"{user}: not logged in"
    xsrf = [c.value for c in jar if c.name == "_xsrf"][-1]  # a new one comes with the login
    req = urllib.request.Request(base + f"/hub/api/users/{user}/tokens", method="POST",
                                 data=json.dumps({"note": "test"}).encode())
    req.add_header("Content-Type", "application/json")
    req.add_header("X-XSRFToken", xsrf)
    with opener.open(req, timeout=60) as r:
        return json.loads(r.read())["token"]


async def run_notebook(base: str, user: str, token: str, nb: dict[str, Any]) -> list[str]:
    """Execute every code cell of nb in a new kernel of user's server, as a student's Run
    All does; the cells' outputs go into nb; returns each cell's text."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    # Blocking calls off the event loop: the other students' websockets must keep answering
    # their servers' pings meanwhile.
    kernel = await asyncio.to_thread(api, base, f"/user/{user}/api/kernels", token, "POST",
                                     {"name": "python3"})
    ws_url = base.replace("http", "ws") + f"/user/{user}/api/kernels/{kernel['id']}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url,
                                               headers={"Authorization": f"token {token}"}))
    session, texts = uuid.uuid4().hex, []
    try:
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            msg_id = uuid.uuid4().hex
            await conn.write_message(json.dumps({
                "header": {"msg_id": msg_id, "session": session, "username": user,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "".join(cell["source"]), "silent": False,
                            "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": False}}))
            outputs, done = [], False
            while not done:
                raw = await asyncio.wait_for(conn.read_message(), 300)
                assert raw is not None, f"{user}: the kernel's websocket closed " \
                                        f"({conn.close_code} {conn.close_reason})"
                m = json.loads(raw)
                if m.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = m["msg_type"]
                if kind == "stream":
                    outputs.append({"output_type": "stream", "name": m["content"]["name"],
                                    "text": m["content"]["text"]})
                elif kind == "error":
                    outputs.append({"output_type": "error", **m["content"]})
                elif kind in ("execute_result", "display_data"):
                    outputs.append({"output_type": kind, "data": m["content"]["data"],
                                    "metadata": {}, **({"execution_count": None}
                                                       if kind == "execute_result" else {})})
                elif kind == "status" and m["content"]["execution_state"] == "idle":
                    done = True
            cell["outputs"] = outputs
            texts.append("".join(o.get("text", "") for o in outputs) +
                         "".join(o.get("evalue", "") for o in outputs))
    finally:
        conn.close()
        await asyncio.to_thread(api, base, f"/user/{user}/api/kernels/{kernel['id']}", token,
                                "DELETE")
    return texts


@pytest.fixture
def students() -> Any:
    """Five local accounts with passwords; removed, with their homes, afterwards."""
    made = {}
    try:
        for i, u in enumerate(USERS):
            subprocess.run(["userdel", "-r", u], capture_output=True)
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", u], check=True)
            pw = f"pw-{uuid.uuid4().hex[:12]}-{i}"
            subprocess.run(["chpasswd"], input=f"{u}:{pw}\n", text=True, check=True)
            made[u] = pw
        yield made
    finally:
        for u in made:
            subprocess.run(["pkill", "-KILL", "-u", u], capture_output=True)
        time.sleep(0.5)
        for u in made:
            subprocess.run(["userdel", "-r", u], capture_output=True)


@pytest.mark.slow
def test_five_students_on_one_class_server(students: dict[str, str], tmp_path: Path) -> None:
    need_root()
    from ministack.course import proxy_command

    need(proxy_command(), "configurable-http-proxy (./setup.sh)")
    need(shutil.which("jupyterhub", path=str(BIN)), "JupyterHub (the test extra, ./setup.sh)")
    need(shutil.which("runuser") and Path("/usr/bin/python3").exists(),
         "runuser and /usr/bin/python3")
    env = Path(tempfile.mkdtemp(prefix="ms-course-env-", dir="/var/tmp"))
    os.chmod(env, 0o755)
    state = Path(tempfile.mkdtemp(prefix="ms-course-state-", dir="/var/tmp"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    hub = None
    try:
        r = subprocess.run([str(BIN / "ministack"), "course", "env", str(env)],
                           capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        hub = subprocess.Popen([str(BIN / "ministack"), "course", "serve", "--env", str(env),
                                "--state", str(state), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                api(base, "/hub/api/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert hub.poll() is None, hub.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "the hub did not come up"
                time.sleep(0.5)
        # Each student logs in with their password, then gets an API token, and starts
        # their server.
        tokens = {u: login(base, u, pw) for u, pw in students.items()}
        for u in students:
            try:
                api(base, f"/hub/api/users/{u}/server", tokens[u], "POST", {})
            except urllib.error.HTTPError as e:
                assert e.code == 202, e  # 202: spawning
        deadline = time.monotonic() + 180
        while not all(api(base, f"/hub/api/users/{u}", tokens[u])["servers"].get("", {})
                      .get("ready") for u in students):
            assert time.monotonic() < deadline, "the students' servers did not start"
            assert hub.poll() is None, hub.stdout.read()[-3000:]
            time.sleep(1)
        for u in students:
            home = Path(pwd.getpwnam(u).pw_dir) / "ministack-labs"
            copied = sorted(p.name for p in home.glob("*.ipynb"))
            assert copied == sorted(p.name for p in (LABS / "release").glob("*/*.ipynb")), u
            assert all(p.stat().st_uid == pwd.getpwnam(u).pw_uid for p in home.iterdir()), u

        async def student(u: str) -> dict[str, list[str]]:
            out = {}
            for lab in RUN:
                nb = answered(lab)  # the student's answers, written into their copy
                # A probe, before the lab's clean-up cell (which closes the switch): who
                # runs the kernel, and which ports this student's switch sees.
                at = max(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
                if "sw.close()" not in "".join(nb["cells"][at]["source"]):
                    at = len(nb["cells"])
                nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "outputs": [],
                                        "execution_count": None, "source":
                                        f"mine = sw.port('only-{u}')\n"
                                        "import os\nprint('uid', os.geteuid(), "
                                        "'ports', sorted(p.name for p in sw.ports()))"})
                texts = await run_notebook(base, u, tokens[u], nb)
                errors = [o for c in nb["cells"] for o in c.get("outputs", [])
                          if o["output_type"] == "error"]
                assert not errors, (u, lab, errors)
                probe = nb["cells"].pop(at)
                texts.append("".join(o.get("text", "") for o in probe["outputs"]))
                await asyncio.to_thread(api, base, f"/user/{u}/api/contents/{lab}.ipynb",
                                        tokens[u], "PUT",
                                        {"type": "notebook", "format": "json", "content": nb})
                out[lab] = texts
            return out

        async def everyone() -> list[dict[str, list[str]]]:
            return await asyncio.gather(*(student(u) for u in students))

        results = dict(zip(students, asyncio.run(everyone())))
        for u, labs in results.items():
            uid = pwd.getpwnam(u).pw_uid
            for lab, texts in labs.items():
                checks = [t for t in texts if "✓" in t]
                assert len(checks) == 3, (u, lab, texts)
                last = texts[-1]
                assert f"uid {uid} " in last and uid != 0, (u, last)
                ports = json.loads(last.split("ports ", 1)[1].replace("'", '"'))
                # Only this notebook's own ports: nothing of any other student's.
                assert f"only-{u}" in ports and not any(f"only-{o}" in ports
                                                        for o in students if o != u), last
        # The instructor collects the five notebooks from the homes and grades them, both
        # labs at once (a course directory each: one gradebook takes one writer).
        def grade(lab: str) -> list[dict[str, str]]:
            (tmp_path / lab).mkdir()
            course = course_copy(tmp_path / lab, lab)
            for u in students:
                saved = Path(pwd.getpwnam(u).pw_dir) / "ministack-labs" / f"{lab}.ipynb"
                submit(course, lab, u, json.loads(saved.read_text()))
            nbgrader(course, "autograde", lab, "--create", "--force")
            nbgrader(course, "export", "--to", str(course / "grades.csv"))
            with open(course / "grades.csv", newline="") as f:
                return list(csv.DictReader(f))

        with ThreadPoolExecutor(max_workers=len(RUN)) as pool:
            tables = dict(zip(RUN, pool.map(grade, RUN)))
        for lab, rows in tables.items():
            mine = [r for r in rows if r["assignment"] == lab]
            assert len(mine) == len(rows), rows
            assert sorted(r["student_id"] for r in mine) == sorted(students), rows
            assert all(float(r["score"]) == float(r["max_score"]) for r in mine), mine
    finally:
        if hub is not None:
            hub.terminate()
            try:
                hub.wait(30)
            except subprocess.TimeoutExpired:
                hub.kill()
            subprocess.run(["pkill", "-f", f"configurable-http-proxy.*{port}"],
                           capture_output=True)
        shutil.rmtree(env, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
