"""A Python Celery app for the mixed-fleet test: the same test.record task
as tests/celery/test_tasks.cc, served by `celery worker --pool=prefork`.
Broker and backend from $CELERY_TEST_BROKER."""

import os
import time

from celery import Celery

url = os.environ["CELERY_TEST_BROKER"]
app = Celery("python_worker_app", broker=url, backend=url)
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 2
app.conf.broker_connection_retry_on_startup = True


@app.task(name="test.record")
def record(path, seconds):
    with open(path, "a") as f:
        f.write("%d\n" % os.getpid())
    time.sleep(seconds)
    return os.getpid()
