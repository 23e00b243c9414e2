"""`make bench` (`python -m bench`): the system's throughput and latency figures, in one run.

Everything runs on this machine against 127.0.0.1: a fresh PostgreSQL database
(`helpdesk_bench`, kept after the run for inspection; `helpdesk_bench_ceiling` is dropped),
Redis db 14 (flushed before and after), `helpdesk web` (gunicorn, one gevent worker) and
`helpdesk worker` processes in their own process groups (bench/system.py), stopped on success,
error, Ctrl-C and SIGTERM. The load generator (bench/load.py) is one spawned process driving
keep-alive connections from a `selectors` loop with pre-signed requests; every loop in the
bench is bounded by a count and a time.

Scenarios (bench/scenarios.py), in order:

1. ceiling  bare Flask endpoint, one INSERT + one RQ enqueue (bench/ceiling.py), served like
            our web tier; closed loop, `--concurrency` connections (8: where the ceiling
            peaks on 2 cores; ack latency grows with it by Little's law), 10 s in all.
2. accept   signed `api` webhooks (unique event and message ids, 8 customers), same load,
            worker stopped: acks/s (ratio to 1.) and ack p50/p99 (send -> full response).
            1. and 2. run in alternating 5-s slices so that both see the same machine.
3. drain    the deliveries stored by 2., topped up through the same webhook to 10,000, then
            ONE worker process: messages committed/s between the first and the last
            delivery's `processed_at` (worker start-up excluded, reported apart). Bounded
            (120 s): a slower drain is cut, the rest dropped. Then the routing jobs it left
            (one per ticket: they coalesce while waiting) run, and 200 more, one per
            message round the bench's tickets, are timed (up to 20 s) for their rate;
            "sustainable" = one ingest job + one routing job per message.
4. steady   open loop at 50% of the drain rate (at most 50% of sustainable), worker on: the
            `messages` table is polled every 5 ms for the sent external ids -> webhook ->
            committed p50/p99 (resolution ~5 ms).
5. socket   open loop at 50% of the accept rate, capped at 50% of sustainable so the queue
            does not grow; a python-socketio client on /agents as an admin; each
            `message.created` matched by message text -> webhook -> socket p50/p99.
6. split    5. again (new messages) with a second worker on the `ingest` queue only: does
            a message wait behind routing jobs? (No target; 12-03: 43.7 ms p50 with it,
            45.0 without: no.)

Percentiles interpolate linearly between closest ranks. Each scenario also records CPU use
(our processes, PostgreSQL + Redis, and `others`: the rest of the machine, i.e. disturbance)
and PostgreSQL connections opened; CPU ms per request is less sensitive to a busy machine
than rates and latencies. Figures: a table on stdout and bench/results/latest.json (process
logs in bench/results/logs/). Exit status 0 whenever the run completes, PASS or MISS.
"""
