"""The coordinator process: one policy thread, one ROUTER socket, timers between messages.

It takes the cache root's lock, loads the index, binds, and then handles
every queued message before looking at its timers (snapshots, the staging
sweep) and at signals.  A periodic snapshot is written a slice per turn
(``snapshotter``), so no message waits more than a slice for one.  The
file work the messages of a turn call for (``filework``) runs once they are
all decided, in their order, and then their replies go out, one message per
front end (``Outbox``).  An ``ipc://`` socket is created with mode 0600 in a
directory only its user may enter: any local process that can connect can
delete objects, so the file mode is the access control (over TCP, CURVE
keys are: see ``curve``).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path

import zmq

from packrat.coordinator import protocol
from packrat.coordinator.curve import secure_server
from packrat.coordinator.filework import FileWork
from packrat.coordinator.service import Coordinator
from packrat.coordinator.snapshotter import SnapshotJob
from packrat.core.errors import ErrorCode
from packrat.core.fdlimit import raise_open_file_limit
from packrat.core.settings import Settings, endpoint_problem
from packrat.store import lock_root, sweep_staging

log = logging.getLogger("packrat.coordinator")

# Seconds between staging sweeps: a backstop (the supervisor removes a dead front
# end's files at once, and stale ones have idled an hour), and a stat per staged
# file: the bench's 24,000 took a tenth of a busy coordinator's time when one ran.
SWEEP_INTERVAL = 60.0
REPORT_INTERVAL = 10.0  # seconds: slow turns are reported at most this often
POLL_MS = 100  # longest the loop sleeps before looking at timers and signals
SLOW_TURN = 0.020  # a turn of the loop this long is reported (issue 17: nothing may hold it longer)
# pyzmq's flags as ints: an operation on its enum flags builds a new member.
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)


class CoordinatorServer:
    """Runs a ``Coordinator`` behind its socket until told to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.coordinator = Coordinator(settings)
        self.stopping = False
        self.snapshot_job: SnapshotJob | None = None

    def run(self, handle_signals: bool = True) -> None:
        """Serve until SIGTERM/SIGINT (or ``stopping``); snapshot on the way out.

        Without ``handle_signals`` (a coordinator in a thread, for in-process
        tests) it serves until ``stopping`` is set.
        """
        if handle_signals:
            signal.signal(signal.SIGTERM, self._request_stop)
            signal.signal(signal.SIGINT, self._request_stop)
        raise_open_file_limit()
        coordinator = self.coordinator
        coordinator.layout.create()
        lock_fd = lock_root(coordinator.layout, "coordinator")
        loaded = False
        try:
            coordinator.load()
            loaded = True
            coordinator.files = FileWork(queued=True)
            # What start-up built lives as long as the process: out of the cyclic
            # collector's sight, a full collection no longer walks millions of
            # entries (85 ms at ten million) while messages wait.
            gc.freeze()
            self._serve()
        finally:
            if self.snapshot_job is not None:  # never two writers of the snapshot at once
                self.snapshot_job.abort()
            # A failed load leaves a partial index: saving it (clean, at that)
            # would lose what it missed; the files and the old snapshot stay.
            if loaded and coordinator.snapshot(clean=True):
                log.info(
                    "coordinator stopped; snapshot of %d objects saved", len(coordinator.index)
                )
            coordinator.close()
            os.close(lock_fd)

    def _serve(self) -> None:
        settings = self.settings
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        keys = settings.coordinator_curve_keys
        problem = endpoint_problem(settings.coordinator_endpoint, keys)
        if problem:  # config.load refuses it too; this guards Settings made in code
            raise ValueError(f"[coordinator] endpoint: {problem}")
        authenticator = secure_server(socket, context, keys) if keys is not None else None
        files = self.coordinator.files
        outbox = Outbox(socket)
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        try:
            _bind(socket, settings.coordinator_endpoint)
            log.info("coordinator listening on %s", settings.coordinator_endpoint)
            next_snapshot = time.monotonic() + settings.coordinator_snapshot_interval
            next_sweep = time.monotonic() + SWEEP_INTERVAL
            coordinator = self.coordinator
            in_snapshot = 0  # changes the snapshot being written holds
            slow = SlowTurns()
            while not self.stopping:
                job = self.snapshot_job
                # While a snapshot is written, do not sleep: idle turns write it.
                events = dict(poller.poll(0 if job is not None and not job.written else POLL_MS))
                slow.start()
                if socket in events:
                    self._drain(socket, outbox)
                    files.run_all()  # the turn's file work, which completes its replies
                    outbox.send()
                if job is not None:
                    if not job.written:
                        if job.step():
                            job.finish_in_background()
                    elif (saved := job.done()) is not None:
                        if not saved:
                            coordinator.changes += in_snapshot  # the next one takes them
                        self.snapshot_job = None
                now = time.monotonic()
                if now >= next_snapshot:
                    if coordinator.changes and self.snapshot_job is None:
                        self.snapshot_job = coordinator.begin_snapshot()
                        in_snapshot, coordinator.changes = coordinator.changes, 0
                    next_snapshot = now + settings.coordinator_snapshot_interval
                if now >= next_sweep:
                    sweep_staging(
                        coordinator.layout, settings.coordinator_stale_staging, running=True
                    )
                    next_sweep = now + SWEEP_INTERVAL
                slow.end(job is not None)
        finally:
            files.close()  # the decided file work is done and answered first
            outbox.send()
            socket.close()
            if authenticator is not None:
                authenticator.stop()
            context.term()

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _drain(self, socket: zmq.Socket, outbox: Outbox) -> None:
        """Handle every message already queued, without blocking; replies go to ``outbox``."""
        # Until ``Again``, and ``more`` from a frame: a ``getsockopt`` (``EVENTS``,
        # ``RCVMORE``) converts its option to pyzmq's enum, 2 to 4 µs each per message.
        recv, decode, dispatch = socket.recv, protocol.decode_request, self.coordinator.dispatch
        reply_to = outbox.reply
        while True:
            try:
                identity = recv(_NOBLOCK)  # the ROUTER's frame: the message's follows
            except zmq.Again:
                return
            message = recv(_NOBLOCK, copy=False)
            if message.more:  # not one of ours: a request is one frame
                while recv(_NOBLOCK, copy=False).more:
                    pass
                continue
            frame = message.bytes
            respond = partial(reply_to, identity)  # calls straight through: no frame of its own

            try:
                request = decode(frame)
            except protocol.ProtocolError as e:
                if (refusal := _refuse(e)) is not None:
                    respond(refusal)
                continue
            dispatch(request, respond)


def _refuse(error: protocol.ProtocolError) -> protocol.Reply | None:
    """The reply to a malformed frame; None without a usable ``id`` (it is dropped)."""
    log.warning("refusing a malformed message: %s", error)
    if error.request_id is None:
        return None
    return protocol.Reply(error.request_id, error=ErrorCode.INVALID_MESSAGE, message=str(error))


class Outbox:
    """A turn's replies, sent once its file work is done: one message per front end.

    Each message sent wakes ZeroMQ's I/O thread (a write to its eventfd),
    which was an eighth of the coordinator's CPU per commit with a message
    per reply.  A reply waits for the rest of its turn's file work, a few
    milliseconds at most; the frames of a message are separate replies in
    their order (``protocol``), which a DEALER reads one ``recv`` each.
    """

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket = socket
        self.frames: dict[bytes, list[bytes]] = {}  # by front end's identity

    def reply(self, identity: bytes, reply: protocol.Reply) -> None:
        frame = protocol.encode(reply)
        frames = self.frames.get(identity)
        if frames is None:
            self.frames[identity] = [frame]
        else:
            frames.append(frame)

    def send(self) -> None:
        send = self.socket.send
        for identity, frames in self.frames.items():
            send(identity, _SNDMORE)
            for frame in frames[:-1]:
                send(frame, _SNDMORE)
            send(frames[-1])
        self.frames.clear()


class SlowTurns:
    """Reports turns of the loop over ``SLOW_TURN``: the worst, at most every ``REPORT_INTERVAL``.

    Wall-clock time and the loop thread's own CPU time: a turn long in the
    first and short in the second waited for a core (other processes), not
    for its own work.
    """

    def __init__(self) -> None:
        self.worst: tuple[float, float, bool] | None = None  # wall, CPU, writing a snapshot
        self.reported = time.monotonic()
        self._started = self._cpu = 0.0

    def start(self) -> None:
        self._started, self._cpu = time.perf_counter(), time.thread_time()

    def end(self, snapshot: bool) -> None:
        wall = time.perf_counter() - self._started
        if wall >= SLOW_TURN and (self.worst is None or wall > self.worst[0]):
            self.worst = (wall, time.thread_time() - self._cpu, snapshot)
        if self.worst is not None and time.monotonic() - self.reported >= REPORT_INTERVAL:
            wall, cpu, snapshot = self.worst
            log.warning(
                "a turn of the loop took %.0f ms (%.1f ms of its own CPU%s)",
                wall * 1000,
                cpu * 1000,
                ", a snapshot under way" if snapshot else "",
            )
            self.worst, self.reported = None, time.monotonic()


def _bind(socket: zmq.Socket, endpoint: str) -> None:
    """Bind; an ``ipc://`` socket gets mode 0600 in a directory made 0700."""
    if not endpoint.startswith("ipc://"):
        socket.bind(endpoint)
        return
    path = Path(endpoint[len("ipc://") :])
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old_umask = os.umask(0o177)
    try:
        socket.bind(endpoint)
    finally:
        os.umask(old_umask)


def run(settings: Settings) -> None:
    CoordinatorServer(settings).run()
