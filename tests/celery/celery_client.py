"""The real Python Celery client, driven by the C++ tests.

  celery_client.py send    URL '[{"task":..,"args":..,"kwargs":..,"options":{..}}]'  -> ids (JSON)
  celery_client.py produce URL N OFFSET        -> ids of N forkserver.add(i, 1000 + i)
  celery_client.py get     URL '[ids]' TIMEOUT  -> {id: outcome} (JSON), TIMEOUT in all
  celery_client.py ping    URL TIMEOUT         -> replies (JSON)
  celery_client.py revoke  URL ID TERMINATE    -> "ok"

An outcome is {"status", "value"} on success, or {"status", "exc_module",
"exc_type", "exc_args", "str"} when get() raised: what a Python user sees.
Options for send go to send_task as given (countdown, expires (seconds from
now), time_limit, soft_time_limit, priority, queue).
"""

import datetime
import json
import sys
import time

import celery


def make_app(url):
    app = celery.Celery(broker=url, backend=url)
    app.conf.broker_connection_retry_on_startup = True
    return app


def send(app, specs):
    ids = []
    for spec in specs:
        options = dict(spec.get("options", {}))
        if "expires" in options:
            options["expires"] = (datetime.datetime.now(datetime.timezone.utc)
                                  + datetime.timedelta(seconds=options["expires"]))
        r = app.send_task(spec["task"], args=spec.get("args", []),
                          kwargs=spec.get("kwargs", {}), **options)
        ids.append(r.id)
    return ids


def get(app, ids, timeout):
    """TIMEOUT bounds the whole call, not each get()."""
    out = {}
    deadline = time.monotonic() + timeout
    for task_id in ids:
        r = app.AsyncResult(task_id)
        try:
            left = max(0.1, deadline - time.monotonic())
            out[task_id] = {"status": "SUCCESS", "value": r.get(timeout=left)}
        except Exception as e:  # what the user would catch
            out[task_id] = {"status": r.state, "exc_module": type(e).__module__,
                            "exc_type": type(e).__name__,
                            "exc_args": [repr(a) for a in e.args], "str": str(e)}
    return out


def main(argv):
    command, url = argv[1], argv[2]
    app = make_app(url)
    if command == "send":
        result = send(app, json.loads(argv[3]))
    elif command == "produce":
        n, offset = int(argv[3]), int(argv[4])
        result = send(app, [{"task": "forkserver.add", "args": [i, 1000 + i]}
                            for i in range(offset, offset + n)])
    elif command == "get":
        result = get(app, json.loads(argv[3]), float(argv[4]))
    elif command == "ping":
        result = app.control.ping(timeout=float(argv[3]))
    elif command == "revoke":
        app.control.revoke(argv[3], terminate=argv[4] == "1")
        result = "ok"
    else:
        raise SystemExit("unknown command " + command)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
