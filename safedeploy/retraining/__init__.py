"""Retraining on new data when an alarm fires (issue 15, closing the loop).

``policy`` decides (debounce, one at a time, cooldown: a pure function), ``new_data`` turns production's
labelled capture into raw-table rows, ``trigger`` looks after each scheduled monitoring execution and starts a
retraining as a detached process (``python -m safedeploy.retraining run``), ``status`` is what ``make status``
shows.
"""
