"""The job registry: every entry names a function the worker can import, on a real queue."""

from __future__ import annotations

from rq.utils import import_attribute

from helpdesk import jobs, queues


def test_every_registered_job_resolves_to_a_worker_function():
    for job in jobs.ALL:
        assert callable(import_attribute(job.func)), job.func
        assert job.queue in queues.QUEUE_NAMES, job.func


def test_every_job_function_is_registered():
    import workers.jobs

    registered = {job.func for job in jobs.ALL}
    public = {f"workers.jobs.{name}" for name, value in vars(workers.jobs).items()
              if callable(value) and getattr(value, "__module__", "") == "workers.jobs"
              and not name.startswith("_")}
    assert public == registered


def test_job_ids_name_the_work_they_do():
    assert jobs.ROUTE_TICKET.id_for(7) == "route-7"
    assert jobs.PROCESS_DELIVERY.id_for(3) == "delivery-3"
    assert jobs.SEND_MESSAGE.id_for(5) == "send-5"
    assert jobs.SEND_SURVEY.id_for(9, "http://x") == "survey-9"
    assert (jobs.CHECK_SLA.id_for(1, "first_response", "breach", "2026-01-01T00:00:00+00:00")
            == "sla-1-first_response-breach-1767225600")
