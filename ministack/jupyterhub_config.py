"""JupyterHub for a MiniStack class on one machine: `ministack course serve` runs
`jupyterhub -f` on this file (an instructor may copy it and run jupyterhub on the copy).

Students log in with their local accounts (PAM); each gets their own single-user server,
started as that user (no root: the labs that need it say so and skip), running the
students' environment ($MINISTACK_COURSE_ENV, made by `ministack course env`), on the
virtual NIC. On every spawn, the student versions of the labs that are not yet in the
student's ~/ministack-labs are written there, as the student; their work is never
overwritten. Settings come from the environment `ministack course serve` sets:

MINISTACK_COURSE_ENV     the students' virtual environment (readable by every student)
MINISTACK_COURSE_LABS    the student versions (labs/release/)
MINISTACK_COURSE_STATE   where the hub keeps its database, cookie secret and proxy token
MINISTACK_COURSE_BIND    the address the class opens, http://IP:PORT (the hub's API and the
                         proxy's take PORT+1 and PORT+2 on 127.0.0.1)
MINISTACK_COURSE_GROUP   when set, only members of this Unix group may log in
MINISTACK_COURSE_PROXY   configurable-http-proxy, when not the one on PATH
"""
import os
import pwd
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub provides it)

ENV = Path(os.environ["MINISTACK_COURSE_ENV"])
LABS = Path(os.environ["MINISTACK_COURSE_LABS"])
STATE = Path(os.environ["MINISTACK_COURSE_STATE"])

BIND = os.environ.get("MINISTACK_COURSE_BIND", "http://127.0.0.1:8000")
PORT = int(BIND.rsplit(":", 1)[1])
c.JupyterHub.bind_url = BIND
# The hub's own API and the proxy's, on the next two ports (not JupyterHub's fixed 8081
# and 8001, so that two classes, or a test, can share a machine).
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{PORT + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 2}"
if os.environ.get("MINISTACK_COURSE_PROXY"):
    c.ConfigurableHTTPProxy.command = [os.environ["MINISTACK_COURSE_PROXY"]]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")

# Local accounts, never root.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.blocked_users = {"root"}
if os.environ.get("MINISTACK_COURSE_GROUP"):
    c.PAMAuthenticator.allowed_groups = {os.environ["MINISTACK_COURSE_GROUP"]}
else:
    c.Authenticator.allow_all = True

# Each student's own server, as that user, from the students' environment.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~/ministack-labs"
c.Spawner.environment = {"BOKEH_RESOURCES": "inline"}  # the panel's plots, no CDN
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


# Written by the students' Python running as the student, so that nothing in their home
# (a symlink, say) can make root write elsewhere; the notebooks come on stdin, since the
# checkout may be unreadable to students.
COPY = ("import json, pathlib, sys; from ministack.course import student_labs; "
        "student_labs(json.load(sys.stdin), pathlib.Path.home() / 'ministack-labs')")


def copy_labs(spawner) -> None:
    """The student versions into the student's ~/ministack-labs, theirs to edit."""
    import json
    import subprocess

    from ministack.course import release_notebooks

    user = pwd.getpwnam(spawner.user.name)
    subprocess.run([str(ENV / "bin" / "python"), "-c", COPY],
                   input=json.dumps(release_notebooks(LABS)), text=True, check=True,
                   user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=user.pw_dir,
                   env={"HOME": user.pw_dir, "PATH": "/usr/bin:/bin"})


c.Spawner.pre_spawn_hook = copy_labs
