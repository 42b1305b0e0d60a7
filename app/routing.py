"""Route decorators that run handlers in the thread pool (they use a sync DB session)."""

from __future__ import annotations

from functools import partial

import litestar

get = partial(litestar.get, sync_to_thread=True)
post = partial(litestar.post, sync_to_thread=True)
patch = partial(litestar.patch, sync_to_thread=True)
put = partial(litestar.put, sync_to_thread=True)
delete = partial(litestar.delete, sync_to_thread=True)
