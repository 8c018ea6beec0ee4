"""flask_jobq: the Flask extension for jobq.

It depends on the ``jobq`` core, never the reverse. The extension itself
(``JobQ``, signals and the monitoring blueprint) arrives with the durable queue.
"""
