# gunicorn settings for an app whose jobq workers run in the web processes.
workers = 2
# On SIGTERM each web process finishes its requests, then gives running jobs
# 30 s (jobq's grace) before it exits; the master kills it after this many seconds.
graceful_timeout = 40
