"""The hot routes without ``RequestHandler``: ``GET``/``HEAD /<key>`` of a stored object,
``GET /exists/<key>``, and ``PUT``/``POST /<key>`` uploads.

Most requests a cache sees are reads that need nothing but the disk, and
Tornado's ``RequestHandler`` life cycle (routing, the handler object and its
header dictionary, ``prepare``, the coroutine that runs it, ``finish``) cost
more than the read itself: half of a small ``GET``'s time in the profile of
docs/benchmarks.md.  Here the server's message delegate answers them
directly, with the same headers, bytes, checks, access line and counts as the
handlers (``downloads`` builds and sends both).

It takes only what it can answer at once: a ``GET`` or ``HEAD`` without a
body, of a valid key, when reads need no credentials, and, for an object, only
when it opens cleanly and the answer is a 200, 206 or 304.  Everything else
(an absent or corrupt object, an unsatisfiable range, credentials to check)
goes to the application as if this module did not exist, and
``ObjectHandler`` or ``ExistsHandler`` answers it, errors included.  An
upload of a valid key is taken when writes need no credentials, and answered
here whatever happens (``uploads.BodyReceiver`` does the work, as for
``ObjectHandler``; its errors get the JSON shape of ``BaseHandler``).
``tests/test_hot.py`` holds both paths to the same answers.

``routes`` takes a request or leaves it to the application; ``request``
holds what every hot request shares (one access line however it ends, an
answer written in one ``send``); ``reads`` answers ``GET``/``HEAD`` of
objects and ``exists``; ``uploads`` receives and commits a body.
"""

from packrat.frontend.hot.routes import HotRoutes

__all__ = ["HotRoutes"]
