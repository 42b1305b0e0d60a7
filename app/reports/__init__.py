"""Read-only reports over bookings, requests, agreements and the ledger.

One module per report (``utilisation``, ``fulfilment``, ``reciprocity``, …), each with one
query function ``report(session, actor, filters) -> Report``: the same rows feed the JSON
and CSV answers (``controllers``) and, later, the dashboard. ``scope`` holds the period,
filters and who may see what; ``schemas`` the shared ``Report`` shape.
"""
