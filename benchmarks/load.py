"""Load test of the dashboard: N concurrent sessions against the real ``streamlit run`` server.

    python benchmarks/load.py [--sessions 8] [--tours 1] [--port 0] [--timeout 300]
    python benchmarks/load.py --sessions 1,4,8      # one fresh server per N, in sequence

No browser is involved: each session speaks Streamlit's own protocol, the one the frontend speaks.

* ``GET /_stcore/health`` (this sets the ``_streamlit_xsrf`` cookie), then a websocket to
  ``ws://127.0.0.1:<port>/_stcore/stream`` (subprotocol ``streamlit``). Every frame is a binary
  protobuf: ``BackMsg`` from the client, ``ForwardMsg`` from the server.
* A page view is a ``BackMsg.rerun_script`` holding a ``ClientState`` (``page_name`` = the page's url
  path, the last ``query_string`` the server set, and ``widget_states``). The server answers with
  ``new_session`` (its ``initialize.session_id`` names the session), the page's ``delta`` elements
  and ``script_finished``; a run ended by ``st.rerun`` finishes ``FINISHED_EARLY_FOR_RERUN`` and the
  next run of the chain follows, so a page is timed from the request to the chain's last finish.
* A widget's id comes with its element (``$$ID-<hash>-<user key>``: it also hashes the page, so it
  cannot be computed here). A value is a ``WidgetState``: selectbox = ``string_value`` with the
  *formatted* option (Streamlit 1.67), number_input = ``double_value``, text_input =
  ``string_value``, a button click or form submit = ``trigger_value``. A form is submitted by sending
  all its values together with the submit button's trigger, as the browser does.
* An upload: ``BackMsg.file_urls_request`` → ``ForwardMsg.file_urls_response`` (a file id and an
  upload path), a multipart ``PUT`` of the file to ``/_stcore/upload_file/<session>/<file id>``
  (``X-Xsrftoken`` header = the cookie), then a rerun whose uploader state is a
  ``FileUploaderState`` listing the file.

Each N runs on a fresh server (``$IBINN_RUNS`` in a temporary folder, so jobs write there):
warm-up (one session tours every page, caches fill: not counted), **idle** (every session tours
the pages ``--tours`` times, then uploads a 28×28 grey PNG on *Your image*), **submit**
(session 0 queues a long job, ``--long-epochs``; once it runs, every session submits a short one
on *Train*), **busy** (the tours again while a job trains), **leak check** (every session re-renders
*Train*: no session may receive another session's job name). Sessions pause ``--think`` seconds
before each click, as users do (± ``--jitter``, seeded, so that they do not click in lockstep:
with equal pauses, N sessions ask for each page at the same instant and every view waits for the
N − 1 others, which no group of people does). The pages are those of ``PAGES`` in app/main.py (read from its
source: a page added there is toured too). Reported, as Markdown tables: p50 / p95 latency per page
and over all pages, per phase; CPU seconds per phase of the server and of every process it started,
e.g. training workers (``/proc/<pid>/stat`` of its process group), and the server's CPU seconds per
page view (each page's own when one session runs); with several N, a summary comparing them and
the ratio of p95 at the largest N to p95 at the smallest (issue 18 asks for at most 4); exception
elements and error alerts per session; refusals (an error or warning mentioning "limit": the job
limits, a result and not an error); leaks. The exit status is non-zero
when a leak, an exception element or a failed session (timeout, protocol error) was seen. The
server is always stopped, also on Ctrl-C.

``--profile DIR`` samples the server with py-spy during the no-job phase (collapsed stacks, one file
per N): how the findings of the README's "Under load" section were made.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import inspect
import io
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.source_util import page_icon_and_name

# Streamlit 1.67 serves with uvicorn / Starlette and depends on `websockets` (tornado is no longer
# installed with it), so the client uses `websockets` too: no extra dependency.
try:
    from websockets.asyncio.client import connect as ws_connect  # websockets >= 13
except ImportError:  # pragma: no cover
    from websockets import connect as ws_connect  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app" / "main.py"
HOST = "127.0.0.1"  # the only address this benchmark ever connects to


class ProtocolError(RuntimeError):
    """The server did not answer as the protocol says, or the page lacks what a step needs."""


def app_pages(main: Path = APP) -> dict[str, str]:
    """Page label → url path (``ClientState.page_name``) of every ``st.Page`` in ``main``'s ``PAGES``
    list, read from its source, so that a page added there is toured without editing this file.

    The label is the page file's stem; the path is the ``url_path`` given, else what Streamlit infers
    from the file name, and ``""`` for the default page (a request for its own name would be
    answered with page_not_found and the default page).

    >>> app_pages()["models"], app_pages()["latent"]
    ('', 'latent')
    """
    tree = ast.parse(main.read_text(), str(main))
    lists = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "PAGES" for t in node.targets)
             and isinstance(node.value, ast.List)]
    if len(lists) != 1:
        raise ProtocolError(f"{main} has no single `PAGES = [st.Page(...), ...]` list")
    pages: dict[str, str] = {}
    for call in lists[0].elts:
        if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)):
            raise ProtocolError(f"{main}: PAGES holds something other than st.Page(\"<file>\", ...)")
        keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords
                    if k.arg in ("url_path", "default")}
        file = Path(str(call.args[0].value))
        inferred = page_icon_and_name(file)[1]
        path = "" if keywords.get("default") else str(keywords.get("url_path") or inferred).strip("/")
        pages[file.stem] = path
    return pages


#: page label → url path, in the sidebar's order
PAGES = app_pages()
UPLOAD_PAGE, UPLOAD_KEY = "your_image", "yours_upload"
TRAIN_PAGE, SUBMIT_LABEL = "train", "Start training"
NO_UPLOAD_TEXT = b"No image uploaded"  # what Your image says when its uploader is empty
REFUSAL = re.compile(r"limit", re.IGNORECASE)
FINAL = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
# Straight to 127.0.0.1, whatever $http_proxy says; no websocket pings (a browser sends none, and a
# server busy on 2 cores may answer them late and have the connection dropped).
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WS_OPTIONS: dict[str, Any] = {"max_size": None, "ping_interval": None}
if "proxy" in inspect.signature(ws_connect).parameters:  # websockets >= 15 reads $https_proxy
    WS_OPTIONS["proxy"] = None


# --------------------------------------------------------------------------- one page run
@dataclass
class Widget:
    id: str
    kind: str  #: the Element oneof: "selectbox", "number_input", "button", ...
    proto: Any


@dataclass
class Run:
    """What one rerun request brought back."""

    seconds: float
    raw: bytes  #: every ForwardMsg of the run, concatenated (searched for job names)
    widgets: dict[str, Widget]  #: by user key; form submit buttons also by "submit:<label>"
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  #: st.error alerts that are not refusals
    refusals: list[str] = field(default_factory=list)
    runs: int = 1  #: script runs in the chain (> 1 after st.rerun)


def _scan_element(element: Any, run: Run) -> None:
    kind = element.WhichOneof("type")
    if kind == "exception":
        exc = element.exception
        text = f"{exc.type}: {exc.message}"[:300]
        # is_warning: Streamlit's own warnings (e.g. a deprecated argument), shown like exceptions
        if exc.is_warning:
            run.errors.append(f"warning {text}")
        else:
            run.exceptions.append(text)
    elif kind == "alert":
        body = element.alert.body
        if element.alert.format in (Alert.ERROR, Alert.WARNING) and REFUSAL.search(body):
            run.refusals.append(body[:300])
        elif element.alert.format == Alert.ERROR:
            run.errors.append(body[:300])
    elif kind is not None:
        proto = getattr(element, kind)
        wid = getattr(proto, "id", "")
        if isinstance(wid, str) and wid.startswith("$$ID-"):
            widget = Widget(wid, kind, proto)
            run.widgets[wid.split("-", 2)[-1]] = widget  # the user key (or "None")
            if kind == "button" and proto.is_form_submitter:
                run.widgets[f"submit:{proto.label}"] = widget


# --------------------------------------------------------------------------- one browser session
class Session:
    """One simulated browser tab: a websocket speaking BackMsg / ForwardMsg."""

    def __init__(self, name: str, port: int, timeout: float, think: float = 0.0, jitter: float = 0.0):
        self.name, self.port, self.timeout, self.think = name, port, timeout, think
        self.jitter = jitter
        self._rng = random.Random(name)  # seeded: the same pauses on every run
        self.session_id = ""
        self.query_string = ""
        self.xsrf = ""
        self._ws: Any = None

    async def connect(self) -> None:
        self.xsrf = await asyncio.to_thread(self._health)
        self._ws = await asyncio.wait_for(
            ws_connect(f"ws://{HOST}:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                       open_timeout=self.timeout, **WS_OPTIONS),
            self.timeout)

    def _health(self) -> str:
        """The browser's first request; its answer sets the XSRF cookie that uploads must echo."""
        with HTTP.open(f"http://{HOST}:{self.port}/_stcore/health", timeout=self.timeout) as r:
            cookies = r.headers.get_all("Set-Cookie") or []
        for cookie in cookies:
            name, _, rest = cookie.partition("=")
            if name.strip() == "_streamlit_xsrf":
                return rest.split(";", 1)[0]
        return ""

    async def pause(self) -> None:
        """A user's pause before the next click: ``think`` seconds, drawn from
        ``think × [1 − jitter, 1 + jitter]`` so that sessions do not click in lockstep, as people don't."""
        if self.think > 0:
            await asyncio.sleep(self.think * self._rng.uniform(1 - self.jitter, 1 + self.jitter))

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)

    async def _send(self, msg: BackMsg) -> None:
        await asyncio.wait_for(self._ws.send(msg.SerializeToString()), self.timeout)

    async def _recv(self, deadline: float) -> tuple[ForwardMsg, bytes]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        raw = await asyncio.wait_for(self._ws.recv(), left)
        if isinstance(raw, str):
            raise ProtocolError("text frame from the server")
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        return msg, raw

    async def rerun(self, page: str, states: Sequence[WidgetState] = ()) -> Run:
        """Request a run of ``page`` with these widget states; wait for its last script_finished."""
        back = BackMsg()
        cs = back.rerun_script
        cs.query_string, cs.page_name = self.query_string, page
        cs.widget_states.widgets.extend(states)
        start = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        await self._send(back)
        run = Run(0.0, b"", {}, runs=0)
        chunks: list[bytes] = []
        current = None  # script_run_id of the run in progress; None until new_session
        while True:
            try:
                msg, raw = await self._recv(deadline)
            except (TimeoutError, asyncio.TimeoutError):
                raise TimeoutError(f"{self.name}: page {page!r} did not finish in {self.timeout:g} s") \
                    from None
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                current, run.runs = msg.metadata.run.script_run_id, run.runs + 1
                self.session_id = msg.new_session.initialize.session_id or self.session_id
                run.widgets.clear()  # a new run of the chain redraws the page
            if current is None:
                continue  # left over from the previous request (e.g. session_status_changed)
            chunks.append(raw)
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                _scan_element(msg.delta.new_element, run)
            elif kind == "page_info_changed":
                self.query_string = msg.page_info_changed.query_string
            elif kind == "page_not_found":
                run.errors.append(f"page not found: {msg.page_not_found.page_name or page}")
            elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
                exc = msg.session_event.script_compilation_exception
                run.exceptions.append(f"{exc.type}: {exc.message}"[:300])
            elif kind == "script_finished":
                run_id = msg.metadata.run.script_run_id
                if msg.script_finished in FINAL and (not run_id or run_id == current):
                    break
        run.seconds = time.perf_counter() - start
        run.raw = b"".join(chunks)
        return run

    async def upload(self, filename: str, data: bytes) -> FileURLs:
        """Ask for an upload URL, PUT the file there; return its URLs for the uploader state."""
        back = BackMsg()
        request_id = uuid.uuid4().hex
        back.file_urls_request.request_id = request_id
        back.file_urls_request.file_names.append(filename)
        back.file_urls_request.session_id = self.session_id
        deadline = time.monotonic() + self.timeout
        await self._send(back)
        while True:
            try:
                msg, _ = await self._recv(deadline)
            except (TimeoutError, asyncio.TimeoutError):
                raise TimeoutError(f"{self.name}: no file_urls_response in {self.timeout:g} s") from None
            if msg.WhichOneof("type") == "file_urls_response" and \
                    msg.file_urls_response.response_id == request_id:
                break
        response = msg.file_urls_response
        if response.error_msg or len(response.file_urls) != 1:
            raise ProtocolError(f"{self.name}: file_urls_response {response.error_msg or 'empty'}")
        urls = FileURLs()
        urls.CopyFrom(response.file_urls[0])
        await asyncio.to_thread(self._put, urls.upload_url, filename, data)
        return urls

    def _put(self, upload_url: str, filename: str, data: bytes) -> None:
        parts = urllib.parse.urlsplit(upload_url)
        if parts.netloc and parts.hostname != HOST:
            raise ProtocolError(f"upload URL {upload_url!r} is not on {HOST}")
        boundary = secrets.token_hex(16)
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if self.xsrf:
            headers |= {"X-Xsrftoken": self.xsrf, "Cookie": f"_streamlit_xsrf={self.xsrf}"}
        request = urllib.request.Request(f"http://{HOST}:{self.port}{parts.path}", data=body,
                                         headers=headers, method="PUT")
        with HTTP.open(request, timeout=self.timeout) as r:
            if r.status not in (200, 204):
                raise ProtocolError(f"upload PUT answered {r.status}")


# --------------------------------------------------------------------------- widget values
def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def choose_option(options: Sequence[str], wanted: str) -> str:
    """The formatted option for ``wanted``: itself, or the one option whose text starts with it
    (``format_func`` runs on the server: "ibinn" is shown as "IB-INN (generative)")."""
    if wanted in options:
        return wanted
    hits = [o for o in options if _norm(o).startswith(_norm(wanted))]
    if len(hits) != 1:
        raise ProtocolError(f"option {wanted!r} not in {list(options)}")
    return hits[0]


def widget_state(widget: Widget, value: Any) -> WidgetState:
    """The WidgetState the browser would send for ``widget`` set to ``value``."""
    state = WidgetState(id=widget.id)
    if widget.kind == "selectbox":
        state.string_value = choose_option(list(widget.proto.options), str(value))
    elif widget.kind == "number_input":
        if widget.proto.data_type == NumberInput.INT:
            state.int_value = int(value)
        else:
            state.double_value = float(value)
    elif widget.kind in ("text_input", "text_area"):
        state.string_value = str(value)
    elif widget.kind == "checkbox":
        state.bool_value = bool(value)
    elif widget.kind == "button":
        state.trigger_value = True
    else:
        raise ProtocolError(f"no widget state for a {widget.kind}")
    return state


def find_widget(run: Run, key: str, page: str) -> Widget:
    try:
        return run.widgets[key]
    except KeyError:
        raise ProtocolError(f"page {page!r} has no widget {key!r} (has {sorted(run.widgets)})") from None


def demo_png() -> bytes:
    """A 28×28 grey PNG like a Fashion-MNIST image: a light blob on black."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((6, 4, 21, 24), fill=180)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def group_cpu(pgid: int) -> tuple[float, float]:
    """CPU seconds (user + system, from /proc) of the process ``pgid`` itself (all its threads) and
    of its whole process group: every live member plus the children each has waited for, so a
    training worker process counts while it runs and, through its parent, after it ended."""
    tick = os.sysconf("SC_CLK_TCK")
    own = total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) != pgid:  # field 5, pgrp
            continue
        utime, stime, cutime, cstime = (int(x) / tick for x in fields[11:15])
        total += utime + stime + cutime + cstime
        if int(entry.name) == pgid:
            own = utime + stime
    return own, total


class Server:
    """``streamlit run app/main.py`` in its own process group, on 127.0.0.1."""

    def __init__(self, port: int, runs: Path, log: Path):
        self.port, self.runs, self.log = port, runs, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> None:
        env = {**os.environ, "IBINN_RUNS": str(self.runs)}
        cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", HOST,
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), \
                    HTTP.open(f"http://{HOST}:{self.port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{self.log_tail()}")
            time.sleep(0.3)

    def cpu(self) -> tuple[float, float]:
        """(CPU s of the server process, CPU s of it and every process it started)."""
        return group_cpu(self.proc.pid) if self.proc else (math.nan, math.nan)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # the group we created: the server and any child of it
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextlib.contextmanager
def profiled(server: Server, out: Path | None) -> Iterator[None]:
    """Sample the server's Python stacks with py-spy while the block runs (nothing when ``out`` is
    None), into ``out`` as collapsed stacks: one ``frame;frame;... count`` line per distinct stack,
    readable by flamegraph tools or ``sort -k2 -n``. ``--nonblocking``: the server is never paused."""
    if out is None or server.proc is None:
        yield
        return
    if shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.proc.pid), "--nonblocking",
                            "--rate", "50", "--format", "raw", "--output", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


# --------------------------------------------------------------------------- bookkeeping
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); nan for no values."""
    s = sorted(values)
    if not s:
        return math.nan
    k = (len(s) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Phase:
    name: str
    sessions: int = 1  #: sessions running at once; with one, each view's server CPU is its own
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: server-process CPU seconds spent while each view ran (a view's own only when sessions == 1)
    cpu_views: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    wall: float = 0.0
    cpu: float = 0.0  #: the server and every process it started (training workers)
    cpu_server: float = 0.0  #: the server process alone
    server: Server | None = None  #: set while measuring

    @contextlib.contextmanager
    def measure(self, server: Server) -> Iterator[None]:
        self.server = server
        wall, (own, total) = time.perf_counter(), server.cpu()
        try:
            yield
        finally:
            own2, total2 = server.cpu()
            self.wall, self.cpu, self.cpu_server = time.perf_counter() - wall, total2 - total, own2 - own
            self.server = None

    async def view(self, label: str, request: Awaitable[Run]) -> Run:
        """Await one page view, recording its latency and the server's CPU time meanwhile."""
        cpu = self.server.cpu()[0] if self.server else math.nan
        run = await request
        self.times[label].append(run.seconds)
        if self.server:
            self.cpu_views[label].append(self.server.cpu()[0] - cpu)
        return run

    def cpu_per_view(self, label: str) -> float:
        """Mean server CPU seconds of a ``label`` view; nan where views overlapped (sessions > 1)."""
        views = self.cpu_views.get(label, [])
        return sum(views) / len(views) if views and self.sessions == 1 else math.nan

    def views(self) -> int:
        return sum(len(self.times[p]) for p in PAGES if p in self.times)

    def cpu_per_page_view(self) -> float:
        """Mean server CPU seconds of a page view: their own with one session, else the phase's
        server CPU over its page views (then also counting its uploads and submissions)."""
        if self.sessions == 1:
            views = [x for p in PAGES for x in self.cpu_views.get(p, [])]
            return sum(views) / len(views) if views else math.nan
        return self.cpu_server / self.views() if self.views() else math.nan


@dataclass
class Tally:
    """What one session saw, over all phases."""

    name: str
    job_names: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    queued: int = 0
    upload_ok: bool = False
    leaks: list[str] = field(default_factory=list)
    failure: str = ""
    train_raw: bytes = b""

    def add(self, run: Run) -> Run:
        self.exceptions += run.exceptions
        self.errors += run.errors
        self.refusals += run.refusals
        return run


class SessionFailed(Exception):
    pass


# --------------------------------------------------------------------------- the scenario
@dataclass
class Options:
    tours: int
    timeout: float
    think: float
    epochs: float
    long_epochs: float
    warmup: bool
    profile: Path | None = None  #: folder for py-spy profiles of the server (no-job phase)
    jitter: float = 0.0  #: think times vary by ± this fraction


VERBOSE = False


def log(session: Session, what: str, run: Run) -> None:
    if VERBOSE:
        print(f"    {session.name:<5} {what:<22} {run.seconds:7.2f} s  {run.runs} run(s)  "
              f"{len(run.raw):9,d} B  {len(run.exceptions)} exc  {len(run.errors)} err  "
              f"{len(run.refusals)} refusals", flush=True)


async def tour(session: Session, tally: Tally, phase: Phase, tours: int) -> None:
    for _ in range(tours):
        for label, path in PAGES.items():
            await session.pause()
            run = tally.add(await phase.view(label, session.rerun(path)))
            log(session, label, run)


async def upload(session: Session, tally: Tally, phase: Phase, png: bytes) -> None:
    await session.pause()
    page = tally.add(await session.rerun(UPLOAD_PAGE))
    uploader = find_widget(page, UPLOAD_KEY, UPLOAD_PAGE)
    await session.pause()  # picking the file
    start = time.perf_counter()
    filename = f"load-{tally.name}.png"
    urls = await session.upload(filename, png)
    state = WidgetState(id=uploader.id)
    info = state.file_uploader_state_value.uploaded_file_info.add()
    info.file_id, info.name, info.size = urls.file_id, filename, len(png)
    info.file_urls.CopyFrom(urls)
    run = tally.add(await session.rerun(UPLOAD_PAGE, [state]))
    log(session, "upload", run)
    phase.times["upload (your_image)"].append(time.perf_counter() - start)
    tally.upload_ok = not run.exceptions and not run.errors and NO_UPLOAD_TEXT not in run.raw


async def submit(session: Session, tally: Tally, phase: Phase, job: str, epochs: float) -> None:
    await session.pause()
    page = tally.add(await session.rerun(TRAIN_PAGE))
    values: dict[str, Any] = {"train_dataset": "demo:fashion-mnist", "train_model": "ibinn",
                              "train_preset": "tiny", "train_epochs": epochs, "train_device": "cpu",
                              "train_name": job, "train_gamma": "1"}
    states = [widget_state(find_widget(page, key, TRAIN_PAGE), value) for key, value in values.items()]
    states.append(widget_state(find_widget(page, f"submit:{SUBMIT_LABEL}", TRAIN_PAGE), True))
    await session.pause()  # filling in the form
    run = tally.add(await session.rerun(TRAIN_PAGE, states))
    log(session, "submit", run)
    phase.times["submit (train)"].append(run.seconds)
    tally.job_names.append(job)
    if not run.refusals and job.encode() in run.raw:
        tally.queued += 1


def job_state(runs: Path, job: str) -> str:
    """'waiting', 'running' or 'ended', from the job's run folder ``<runs>/app/<name>``: training
    creates it when it starts and writes metrics.json into it when it ends."""
    folders = [p for p in (runs / "app").glob(f"{job}*") if p.is_dir()]
    if not folders:
        return "waiting"
    return "ended" if all((p / "metrics.json").exists() for p in folders) else "running"


def any_job_running(runs: Path) -> bool:
    return any(p.is_dir() and not (p / "metrics.json").exists() for p in (runs / "app").glob("*"))


async def guarded(tally: Tally, step: Any) -> None:
    """Run one session's step; a failure ends that session (recorded), not the benchmark."""
    if tally.failure:
        step.close()  # never started
        return
    try:
        await step
    except Exception as err:  # noqa: BLE001 - reported per session
        tally.failure = f"{type(err).__name__}: {err}"
        raise SessionFailed from err


async def all_sessions(tallies: list[Tally], steps: list[Any]) -> None:
    results = await asyncio.gather(*(guarded(t, s) for t, s in zip(tallies, steps, strict=True)),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, SessionFailed):
            raise result


@dataclass
class Result:
    n: int
    warmup: Phase
    warm: Tally  #: what the warm-up session saw
    phases: list[Phase]
    tallies: list[Tally]
    long_job: str
    busy_running: float  #: fraction of samples in the busy phase with a job training
    long_job_state: str


async def scenario(server: Server, n: int, opt: Options) -> Result:
    port, png, tag = server.port, demo_png(), secrets.token_hex(3)
    warmup, warm = Phase("warm-up (1 session, cold caches)"), Tally("warm")
    if opt.warmup:
        session = Session("warm", port, opt.timeout, opt.think, opt.jitter)

        async def warm_tour() -> None:
            await session.connect()
            await tour(session, warm, warmup, 1)

        try:
            with warmup.measure(server), contextlib.suppress(SessionFailed):
                await guarded(warm, warm_tour())
        finally:
            await session.close()

    sessions = [Session(f"s{i}", port, opt.timeout, opt.think, opt.jitter) for i in range(n)]
    tallies = [Tally(s.name) for s in sessions]
    idle, submitting = Phase("no job running", n), Phase("submit", n)
    busy, leaks = Phase("job running", n), Phase("leak check", n)
    try:
        await all_sessions(tallies, [s.connect() for s in sessions])

        async def idle_steps(s: Session, t: Tally) -> None:
            await tour(s, t, idle, opt.tours)
            await upload(s, t, idle, png)

        profile = opt.profile / f"server-N{n}-no-job.txt" if opt.profile else None
        with idle.measure(server), profiled(server, profile):
            await all_sessions(tallies, [idle_steps(s, t) for s, t in zip(sessions, tallies, strict=True)])

        long_job = f"load-{tallies[0].name}-long-{tag}"
        with submitting.measure(server):
            await all_sessions(tallies[:1], [submit(sessions[0], tallies[0], submitting, long_job,
                                                    opt.long_epochs)])
            deadline = time.monotonic() + (opt.timeout if tallies[0].queued else 0)
            while job_state(server.runs, long_job) == "waiting" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await all_sessions(tallies, [
                submit(s, t, submitting, f"load-{t.name}-{secrets.token_hex(4)}", opt.epochs)
                for s, t in zip(sessions, tallies, strict=True)])

        samples: list[bool] = []

        async def sample() -> None:
            while True:
                samples.append(any_job_running(server.runs))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        try:
            with busy.measure(server):
                await all_sessions(tallies, [tour(s, t, busy, opt.tours)
                                             for s, t in zip(sessions, tallies, strict=True)])
        finally:
            sampler.cancel()
        long_state = job_state(server.runs, long_job)

        async def rerender(s: Session, t: Tally) -> None:
            await s.pause()
            run = t.add(await s.rerun(TRAIN_PAGE))
            log(s, "leak check", run)
            leaks.times["train (leak check)"].append(run.seconds)
            t.train_raw = run.raw

        with leaks.measure(server):
            await all_sessions(tallies, [rerender(s, t) for s, t in zip(sessions, tallies, strict=True)])
        for t in tallies:
            if t.failure:
                continue
            others = [j for o in tallies if o is not t for j in o.job_names]
            t.leaks = [j for j in others if j.encode() in t.train_raw]
            t.train_raw = b""
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    running = sum(samples) / len(samples) if samples else math.nan
    return Result(n, warmup, warm, [idle, submitting, busy, leaks], tallies, long_job, running, long_state)


# --------------------------------------------------------------------------- report
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, the first column left-aligned and the others right-aligned.

    >>> markdown_table(["page", "p50 s"], [["models", "0.12"]])
    ['| page | p50 s |', '|---|---:|', '| models | 0.12 |']
    """
    return [f"| {' | '.join(header)} |", "|---|" + "---:|" * (len(header) - 1),
            *(f"| {' | '.join(row)} |" for row in rows)]


def _num(value: float, digits: int = 2) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def page_times(phase: Phase) -> list[float]:
    """Every page view's latency in ``phase`` (uploads and submissions are not page views)."""
    return [x for p in PAGES for x in phase.times.get(p, [])]


def phase_table(phase: Phase) -> list[str]:
    """A phase's heading line and its Markdown table: p50 / p95 / max latency per page and over all
    pages, with the server's CPU seconds per view (measured per page when one session ran, else the
    phase's CPU time over its page views)."""
    cores = phase.cpu / phase.wall if phase.wall else math.nan
    lines = [f"{phase.name}: wall {phase.wall:.1f} s, server CPU {phase.cpu:.1f} s = {cores:.2f} cores "
             f"(server process {phase.cpu_server:.1f} s + its child processes "
             f"{phase.cpu - phase.cpu_server:.1f} s)", ""]
    labels = [p for p in PAGES if p in phase.times] + [k for k in phase.times if k not in PAGES]
    rows = [[label, _num(percentile(t, 50)), _num(percentile(t, 95)), _num(max(t)), str(len(t)),
             _num(phase.cpu_per_view(label), 3)] for label in labels for t in [phase.times[label]]]
    if phase.views() > 1:
        t = page_times(phase)
        rows.append(["**all pages**", _num(percentile(t, 50)), _num(percentile(t, 95)), _num(max(t)),
                     str(len(t)), _num(phase.cpu_per_page_view(), 3)])
    return lines + markdown_table(["page", "p50 s", "p95 s", "max s", "views", "server CPU s/view"],
                                  rows) + [""]


def summary(results: Sequence[Result]) -> list[str]:
    """Markdown tables comparing the session counts: per page p50 / p95 in each phase without and
    with a job training, each phase's server CPU time, and the ratio of p95 latency (all pages) at
    the largest N to that at the smallest, the figure issue 18 bounds (target ≤ 4)."""
    out: list[str] = []
    for index, name in ((0, "no job running"), (2, "job running")):
        header = ["page"] + [f"N={r.n} {q}" for r in results for q in ("p50", "p95")]
        rows = [[label] + [_num(percentile(r.phases[index].times.get(label, []), q))
                           for r in results for q in (50, 95)] for label in PAGES]
        rows.append(["**all pages**"] + [_num(percentile(page_times(r.phases[index]), q))
                                         for r in results for q in (50, 95)])
        out += [f"Page latency (s), {name}:", "", *markdown_table(header, rows), ""]
    rows = [[str(r.n), phase.name, _num(percentile(page_times(phase), 50)),
             _num(percentile(page_times(phase), 95)), str(phase.views()), _num(phase.cpu, 1),
             _num(phase.cpu_per_page_view(), 3),
             _num(phase.wall, 1), _num(phase.cpu / phase.wall if phase.wall else math.nan)]
            for r in results for phase in (r.phases[0], r.phases[2])]
    out += ["Over all pages, with the server's CPU time (its process and its job workers; CPU per view "
            "counts the server process alone):", "",
            *markdown_table(["N sessions", "phase", "p50 s", "p95 s", "pages", "server CPU s",
                             "CPU s/view", "wall s", "cores"], rows), ""]
    low, high = min(results, key=lambda r: r.n), max(results, key=lambda r: r.n)
    for index in (0, 2):
        p95_low = percentile(page_times(low.phases[index]), 95)
        p95_high = percentile(page_times(high.phases[index]), 95)
        out.append(f"p95 at N = {high.n} / p95 at N = {low.n}, {low.phases[index].name}: "
                   f"{_num(p95_high)} / {_num(p95_low)} = {_num(p95_high / p95_low, 1)}×")
    return out


def report(result: Result, opt: Options) -> list[str]:
    n = result.n
    out = [f"=== {n} session{'s' * (n != 1)}, {opt.tours} tour{'s' * (opt.tours != 1)} each, "
           f"{opt.think:g} s ± {100 * opt.jitter:g} % think time (Streamlit {streamlit.__version__}, "
           f"{os.cpu_count()} CPUs) ==="]
    if result.warmup.times:
        w = result.warmup
        out.append(f"{w.name}: {w.wall:.1f} s, server CPU {w.cpu:.1f} s; "
                   + ", ".join(f"{p} {w.times[p][0]:.1f}" for p in PAGES if p in w.times))
        out.append(f"  warm-up exceptions {len(result.warm.exceptions)}, error alerts "
                   f"{len(result.warm.errors)}{', ' + result.warm.failure if result.warm.failure else ''}")
    for phase in result.phases:
        if phase.times:
            out += phase_table(phase)
    out.append(f"long job {result.long_job} ({opt.long_epochs:g} epochs): {result.long_job_state} at the end "
               f"of the busy tours; a job was training in {100 * result.busy_running:.0f} % of that "
               f"phase's samples")
    out.append(f"  {'session':<8}{'exceptions':>11}{'errors':>8}{'refusals':>9}{'queued':>7}"
               f"{'upload':>7}{'leaks':>6}  failure")
    for t in result.tallies:
        out.append(f"  {t.name:<8}{len(t.exceptions):11d}{len(t.errors):8d}{len(t.refusals):9d}"
                   f"{t.queued:7d}{'ok' if t.upload_ok else 'NO':>7}{len(t.leaks):6d}  {t.failure}")
    ts = result.tallies
    every = [result.warm, *ts]
    out.append(f"totals: exceptions {sum(len(t.exceptions) for t in ts)}, error alerts "
               f"{sum(len(t.errors) for t in ts)}, refusals {sum(len(t.refusals) for t in ts)}, "
               f"jobs queued {sum(t.queued for t in ts)}/{sum(len(t.job_names) for t in ts)}, "
               f"uploads ok {sum(t.upload_ok for t in ts)}/{n}, cross-session leaks "
               f"{sum(len(t.leaks) for t in ts)}, failed sessions {sum(bool(t.failure) for t in ts)}")
    for label, attr in (("exception", "exceptions"), ("error", "errors"), ("refusal", "refusals"),
                        ("leak", "leaks")):
        seen = sorted({m for t in every for m in getattr(t, attr)})
        for message in seen[:3]:
            out.append(f"  {label}: {message.splitlines()[0] if message else ''}")
        if len(seen) > 3:
            out.append(f"  ... {len(seen) - 3} more distinct {label} messages")
    return out


def failed(result: Result) -> bool:
    return any(t.leaks or t.exceptions or t.failure for t in [result.warm, *result.tallies])


def run_one(n: int, port: int, opt: Options, keep: bool) -> Result:
    if port:
        with socket.socket() as s:  # else the health check could find another server on that port
            try:
                s.bind((HOST, port))
            except OSError:
                raise SystemExit(f"port {port} on {HOST} is in use") from None
    folder = Path(tempfile.mkdtemp(prefix=f"ibinn-load-{n}-"))
    server = Server(port or free_port(), folder / "runs", folder / "streamlit.log")
    try:
        server.start(min(opt.timeout, 120))
        print(f"[N={n}] server pid {server.proc.pid if server.proc else '?'} on http://{HOST}:{server.port}, "
              f"runs in {server.runs}", flush=True)
        result = asyncio.run(scenario(server, n, opt))
        if failed(result):  # with showErrorDetails = "none", only the log has the tracebacks
            print(f"[N={n}] server log (tail):\n{server.log_tail()}", flush=True)
        return result
    finally:
        server.stop()
        if keep:
            print(f"[N={n}] kept {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="8", help="concurrent sessions; a list (1,4,8) runs each N "
                        "on a fresh server (default 8)")
    parser.add_argument("--tours", type=int, default=1, help="page tours per session and phase (default 1)")
    parser.add_argument("--port", type=int, default=0, help="server port; 0 picks a free one (default)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed for any one step "
                        "(a page, an upload, a submission, the server start; default 300)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds a session waits before each "
                        "click, as a user would (default 1; 0 = back to back)")
    parser.add_argument("--jitter", type=float, default=0.5, help="think times vary uniformly by ± this "
                        "fraction, seeded, so sessions do not click in lockstep (default 0.5; 0 = lockstep)")
    parser.add_argument("--epochs", type=float, default=0.2, help="epochs of each session's job (0.2)")
    parser.add_argument("--long-epochs", type=float, default=20, help="epochs of the job that trains "
                        "during the busy phase (default 20: it must outlast the busy tours)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the uncounted warm-up tour")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the server with py-spy "
                        "during the no-job phase; collapsed stacks go to DIR/server-N<n>-no-job.txt")
    parser.add_argument("--keep", action="store_true", help="keep the temporary runs folder and log")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every step as it ends")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    counts = [int(x) for x in args.sessions.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        parser.error("--sessions needs positive numbers")
    if not 0 <= args.jitter <= 1:
        parser.error("--jitter must lie between 0 and 1")
    opt = Options(args.tours, args.timeout, args.think, args.epochs, args.long_epochs, not args.no_warmup,
                  args.profile, args.jitter)
    results = []
    for n in counts:
        result = run_one(n, args.port, opt, args.keep)
        print("\n".join(report(result, opt)), flush=True)
        results.append(result)
    if len(results) > 1:
        print("=== summary ===\n" + "\n".join(summary(results)), flush=True)
    bad = [r.n for r in results if failed(r)]
    if bad:
        print(f"FAILED for N = {', '.join(map(str, bad))}: leaks, exception elements or failed sessions")
    return 1 if bad else 0


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so that the finally blocks stop the server


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted (the server was stopped)", file=sys.stderr)
        sys.exit(130)
