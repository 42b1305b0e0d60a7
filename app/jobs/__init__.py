"""Background work: allocation runs and periodic jobs, on a queue or in process.

``tasks`` holds the job functions (independent of any queue) and ``schedule`` the periodic
ones; ``queue`` puts them on procrastinate (PostgreSQL, run by ``copool worker``); ``local``
runs them inside ``copool serve`` (SQLite, or when asked); ``enqueue`` picks one of the two
for the app; ``identity`` names this process as a run's owner and tells whether another
owner is still alive; ``services``/``controllers`` report to admins (``GET /admin/jobs``);
``events`` streams a run's progress as server-sent events.
"""
