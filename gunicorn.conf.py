"""gunicorn settings for Hark: `gunicorn wsgi:app` picks this file up from the checkout.

Each worker loads the model itself, after the fork and before taking requests:
never in the master, since an interpreter's threads and locks do not survive a fork.
"""
import gc
import os

# Where clients connect when gunicorn runs alone; scripts/run.sh, with nginx in front, binds
# gunicorn to a private unix socket instead (--bind on its command line wins over this).
bind = os.environ.get("HARK_BIND", "127.0.0.1:8000")
# CPU-bound requests: one worker per core plus one to cover a worker blocked on a slow upload.
workers = int(os.environ.get("HARK_WORKERS") or min((os.cpu_count() or 1) + 1, 8))
# One request at a time per worker: the model step is CPU-bound. A sync worker waits for the
# whole request body, so slow clients are nginx's to absorb (deploy/nginx.conf.template).
worker_class = "sync"
preload_app = False         # import the app and load the model in each worker, not the master
timeout = int(os.environ.get("HARK_TIMEOUT", "60"))
graceful_timeout = 30
backlog = 256
accesslog = os.environ.get("HARK_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("HARK_LOG_LEVEL", "info")


def post_worker_init(worker):
    """Load the active model now, so the first request is not the slow one.

    Then freeze the garbage collector's view of everything loaded so far: the
    libraries' long-lived objects would otherwise be walked by every full
    collection, a pause in the middle of some request (~11 ms with the LiteRT
    classifier; ~75 ms when TensorFlow was imported).
    """
    store = worker.wsgi.extensions["hark.models"]
    if store.peek() is None:
        worker.log.warning("no model loaded: %s", store.error)
    gc.collect()
    gc.freeze()
