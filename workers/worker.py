"""The worker process: RQ's non-forking worker, one app context per job, plus the sweeper.

Why `SimpleWorker`: on a 2-core machine RQ's default fork-per-job worker costs ~13 ms per job
(~78 jobs/s) against ~3 ms without the fork. Our jobs are short, idempotent and take ids, so
the isolation a fork buys is not worth 4x the throughput; a crashed process loses nothing
(deliveries stay `received` in the database and the sweeper re-enqueues them) and is
restarted by its supervisor (docker `restart`; `helpdesk run` stops everything instead).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty
from rq.utils import now
from rq.worker import DequeueStrategy, WorkerStatus

from helpdesk import heap, jobs, logs, queues
from helpdesk.extensions import db
from helpdesk.services import auth
from helpdesk.services.ingest import deliveries, media
from helpdesk.services.metrics import live as metrics_live
from helpdesk.services.metrics import rollup as metrics_rollup
from helpdesk.services.outbound import sending as outbound
from helpdesk.services.outbound import surveys
from helpdesk.services.routing import presence, urgency
from helpdesk.services.routing import queue as routing_queue
from helpdesk.services.routing import scoring as routing
from helpdesk.services.tickets import actions as tickets
from helpdesk.services.tickets import work_sessions

log = logging.getLogger(__name__)
SWEEP_LOCK = "helpdesk:sweeper"
FIRST_SWEEP_AFTER_SECONDS = 3.0
RESTART_AFTER_SECONDS = 2.0  # after RQ's worker loop ended without a stop request


_pop = threading.local()  # the main thread's place in taking a job: see `_Queue`
POPPING, IN_HAND = "popping", "in hand"


def _dequeuing() -> str | None:
    """POPPING while the thread waits in the blocking pop, IN_HAND from a pop that returned
    a job until the job is registered as started (`HelpdeskWorker.prepare_execution`), else
    None."""
    return getattr(_pop, "state", None)


class _Queue(Queue):
    """RQ's queue, marking the thread while it takes a job (see `_dequeuing`)."""

    @classmethod
    def dequeue_any(cls, *args, **kwargs):
        _pop.state = POPPING
        try:
            found = super().dequeue_any(*args, **kwargs)
        except BaseException:
            _pop.state = None
            raise
        _pop.state = IN_HAND if found is not None else None
        return found


class HelpdeskWorker(SimpleWorker):
    """Runs every job inside one app context of the worker's app (one session per job)."""

    app: Flask
    queue_class = _Queue
    # How long the thread listening for RQ's worker commands waits between looks. RQ asks
    # for 60 s, and redis-py 8.2's PubSubWorkerThread.stop() waits for the thread to end: a
    # worker then took up to a minute to stop (after SIGTERM, or after every burst).
    COMMAND_POLL_SECONDS = 0.2
    # How long one blocking pop waits before the worker looks whether it was asked to stop.
    STOP_POLL_SECONDS = 1
    STOP_GRACE_SECONDS = 3.0  # then a pop that has not returned is interrupted
    # RQ sends the worker's heartbeat (three commands, three round trips) three times per
    # job; its key lives worker_ttl + 60 s. More than one a second says nothing new.
    HEARTBEAT_EVERY_SECONDS = 1.0
    _burst = False
    _suspension_checked = float("-inf")
    _stop_alarm = False

    def work(self, burst: bool = False, *args, **kwargs) -> bool:
        """Queues are taken in turn (round robin), not ingest first: during a burst the
        routing batch for what an ingest batch stored runs next, not once the burst is
        over (issue 17: 900 tickets waited 13-19 s for their scores after the last
        commit); an ingest job hands over after a batch when routing waits."""
        self._burst = burst
        kwargs.setdefault("dequeue_strategy", DequeueStrategy.ROUND_ROBIN)
        return super().work(burst, *args, **kwargs)

    def subscribe(self) -> None:
        """Listen for RQ's worker commands (stop a job, shut down); a burst worker, which
        ends as soon as its queues are empty, does not."""
        if self._burst:
            return
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=self.COMMAND_POLL_SECONDS, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        """RQ's heartbeat between jobs at most once a second, in one round trip (of a no-op
        job's 2.5 ms of worker CPU, the heartbeats were ~0.5 ms). One with a TTL or on a
        pipeline (a job starting, the suspension check) is RQ's own, as it was."""
        if timeout is not None or pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        last = self.last_heartbeat
        if last is not None and (now() - last).total_seconds() < self.HEARTBEAT_EVERY_SECONDS:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(pipeline=pipe)
            pipe.execute()

    def check_for_suspension(self, burst: bool) -> None:
        """`rq suspend` is looked for at most once a second (RQ asks Redis before every job:
        8% of a no-op job's CPU); a suspension takes effect within a second."""
        if time.monotonic() - self._suspension_checked < self.HEARTBEAT_EVERY_SECONDS:
            return
        super().check_for_suspension(burst)
        self._suspension_checked = time.monotonic()

    def perform_job(self, job, queue, execution) -> bool:
        started = time.perf_counter()
        with self.app.app_context():
            ok = super().perform_job(job, queue, execution)
        logs.log_job(job.func_name.rsplit(".", 1)[-1], job.id, "ok" if ok else "failed",
                     (time.perf_counter() - started) * 1000)
        return ok

    def request_stop(self, signum, frame) -> None:
        """SIGTERM: a batch job hands its backlog back after the batch in hand (one
        transaction, well under a second), so the worker exits within a few seconds.

        A worker in its blocking pop, or holding the job it just took until RQ registers it
        as started, is not interrupted: RQ raised out of either, and lost the job (seen in
        CI: the next ingest batch job was gone, its pending flag held back a new one for
        10 s, and 1,300 deliveries waited for the sweeper). The stop is noted instead; the
        pop in hand returns within `STOP_POLL_SECONDS`, and a job it took runs before the
        worker exits. A pop that does not return (Redis unreachable without a reset) is
        interrupted after STOP_GRACE seconds. Anywhere else (waiting to reconnect to Redis,
        say) RQ stops at once."""
        jobs.request_stop()
        taking = _dequeuing()
        if self._burst or self.get_state() == WorkerStatus.BUSY or taking is None:
            super().request_stop(signum, frame)
            return
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self._stop_requested = True
        if taking == POPPING:
            signal.signal(signal.SIGALRM, self._stop_now)
            signal.setitimer(signal.ITIMER_REAL, self.STOP_GRACE_SECONDS)
            self._stop_alarm = True

    def _stop_now(self, signum, frame) -> None:
        """STOP_GRACE seconds after the stop: interrupt a pop that has not returned (one that
        returned a job lets it run; a job that started has its own alarm)."""
        if _dequeuing() == POPPING:
            raise StopRequested()

    def _cancel_stop_alarm(self) -> None:
        if self._stop_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            self._stop_alarm = False

    def prepare_execution(self, job):
        """The job is registered as started and the worker busy: no longer in hand."""
        execution = super().prepare_execution(job)
        _pop.state = None
        return execution

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """RQ's blocking pop, in pops of `STOP_POLL_SECONDS` until a job comes or a stop
        was asked for (then None: the worker exits)."""
        _pop.state = None
        try:
            if timeout is None or max_idle_time is not None:  # burst, or RQ's idle limit
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            while not self._stop_requested:
                result = super().dequeue_job_and_maintain_ttl(
                    min(timeout, self.STOP_POLL_SECONDS), max_idle_time=self.STOP_POLL_SECONDS)
                if result is not None:
                    return result
            return None
        finally:
            self._cancel_stop_alarm()

    def unsubscribe(self) -> None:
        """RQ's own waits for its pubsub thread without a bound: after a Redis restart that
        thread sits in a 60 s read on its fresh connection (or in its reconnect sleeps), and
        a stopping worker waited as long. Here the wait is bounded; the thread is a daemon
        and ends with the process."""
        thread = self.pubsub_thread
        if thread is None:
            return
        thread.stop(timeout=0)  # clears its running flag
        try:
            self.pubsub.unsubscribe()  # the reply wakes a read on a live connection
        except RedisError:
            pass
        thread.join(timeout=1)
        if not thread.is_alive():
            self.pubsub.close()


def make_worker(app: Flask, queue_names: list[str] | None = None) -> HelpdeskWorker:
    names = queue_names or list(queues.QUEUE_NAMES)
    connection = queues.redis_connection(app)
    worker = HelpdeskWorker([queues.get_queue(name, app, _Queue) for name in names],
                            connection=connection)
    worker.app = app
    if threading.current_thread() is not threading.main_thread():
        worker.death_penalty_class = TimerDeathPenalty  # SIGALRM works in the main thread only
    return worker


def sweep_once(app: Flask) -> int:
    """One sweeper pass, at most one per interval across all worker processes."""
    interval = app.config["SWEEP_INTERVAL_SECONDS"]
    with app.app_context():
        try:
            if not queues.redis_connection(app).set(SWEEP_LOCK, "1", nx=True, ex=interval):
                return 0
        except Exception as exc:
            log.warning("sweeper: redis unavailable: %s", exc)
            return 0
        after = app.config["SWEEP_AFTER_SECONDS"]
        steps = (
            deliveries.sweep_unprocessed,
            # Timers rebuilt from the database (lost with an empty or restarted Redis).
            lambda: routing.sweep_overdue(app.config["URGENCY_CONFIG"]),
            lambda: surveys.sweep_due(after),
            lambda: outbound.sweep_stuck(after),
            lambda: media.sweep(after),
            routing.sweep_requested,
            # Before close_idle: their sessions end as closed; and one step with the push
            # fill, which must not hand tickets to agents a dead web process left online.
            lambda: (presence.sweep_dead_processes(), routing_queue.sweep_push()),
            work_sessions.close_idle,
            auth.revoke_expired,
            tickets.close_solved_past_window,
            metrics_rollup.compact_now,
        )
        return _each(steps)


def _each(steps: tuple[Callable[[], object], ...]) -> int:
    """Run every step, each on its own: one that fails (a ticket the scorer cannot take,
    Redis away for the steps that need it) no longer stops the ones after it, pass after
    pass. The first failure is raised at the end, for the pass to report; later ones of
    another kind are logged here (an outage fails every step alike: one report a pass).
    What the first step swept."""
    first: Exception | None = None
    swept = 0
    for index, step in enumerate(steps):
        try:
            result = step()
        except Exception as exc:
            db.session.rollback()
            if first is None:
                first = exc
            elif type(exc) is not type(first):
                log.exception("sweeper: a step failed")
            continue
        if index == 0:
            swept = int(result or 0)
    if first is not None:
        raise first
    return swept


class _Passes:
    """A background loop's passes: a Redis outage is one line when it starts and one when
    it ends (it was a traceback every second while Redis was away); any other failure is
    logged with its traceback, each time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.redis_down = False

    def run(self, work) -> None:
        try:
            work()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if not self.redis_down:
                log.warning("%s: Redis is unavailable (%s); trying again", self.name, exc)
            self.redis_down = True
            return
        except Exception:
            log.exception("%s failed", self.name)
            return
        if self.redis_down:
            log.warning("%s: Redis is back", self.name)
            self.redis_down = False


def start_sweeper(app: Flask, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        # A first pass soon after the worker starts: timers lost while it was down fire now.
        # Not during RQ's own start-up: a pass then (sharing its Redis client while RQ sets
        # the client's socket timeout for BLPOP) left the worker's first BLPOP timing out
        # and RQ backing off for up to half a minute.
        stop.wait(FIRST_SWEEP_AFTER_SECONDS)
        sweeper = _Passes("sweeper pass")
        while not stop.is_set():
            sweeper.run(lambda: sweep_once(app))
            stop.wait(app.config["SWEEP_INTERVAL_SECONDS"])

    thread = threading.Thread(target=loop, name="sweeper", daemon=True)
    thread.start()
    return thread


def start_live_metrics(app: Flask, stop: threading.Event) -> threading.Thread:
    """Supervisors' live figures: checked every second, sent at most every few seconds."""
    def loop() -> None:
        passes = _Passes("live metrics pass")
        while not stop.wait(1.0):
            passes.run(lambda: metrics_live.publish_if_due(app))

    thread = threading.Thread(target=loop, name="live-metrics", daemon=True)
    thread.start()
    return thread


def run(app: Flask, queue_names: list[str] | None = None, *, with_scheduler: bool = True,
        burst: bool = False) -> None:
    """Work the queues until stopped, or in a burst until they are empty.

    RQ reconnects by itself when Redis goes away during its blocking pop, but not elsewhere
    in its loop: a Redis error while it registers a job's end or sends a heartbeat (Redis
    restarting just then), or any other unexpected error there, ends `Worker.work()` ("found
    an unhandled exception, quitting"), which then returns as after a stop, or raises when
    its own teardown fails too. A worker process that exits then stops `helpdesk run`, and a
    worker without a supervisor leaves the queues unworked (seen in the chaos round: both
    workers gone after a Redis restart, 700 deliveries waiting). So only a stop request (or a
    burst's end) ends this loop; anything else starts a fresh RQ worker after a short wait."""
    stop = threading.Event()
    if not burst:
        urgency.warm_up()
        heap.freeze_startup_objects()
        start_sweeper(app, stop)
        start_live_metrics(app, stop)
    try:
        while True:
            worker = None
            failure = None
            try:
                # Building RQ's worker asks Redis already (CLIENT SETNAME).
                worker = make_worker(app, queue_names)
                worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
            except RedisError as exc:  # Redis unreachable at start, or during RQ's teardown
                failure = str(exc)
                if worker is not None:
                    _release(worker)
                if burst:  # a burst is a one-off: it fails (one line, exit 2; startup.explain)
                    raise
            if jobs.stop_requested() or burst:
                # A stop was requested (SIGINT/SIGTERM; asked while Redis was away, RQ's
                # goodbye to Redis failed: no reason to start again), or the burst is done.
                return
            log.warning("worker: %s; starting again in %.0f s",
                        failure or "RQ's worker loop ended on an error (logged above)",
                        RESTART_AFTER_SECONDS)
            time.sleep(RESTART_AFTER_SECONDS)
    except StopRequested:  # SIGTERM between two attempts
        return
    finally:
        stop.set()


def _release(worker: HelpdeskWorker) -> None:
    """What RQ's teardown did not get to when it failed: the command listener thread."""
    try:
        worker.unsubscribe()
    except Exception:  # noqa: BLE001 - best effort; the thread is a daemon
        log.debug("worker: releasing the command listener failed", exc_info=True)
