"""The chaos suite: adversarial requests, kills, full disks, floods and CPU contention, loopback only, bounded.

Each test runs a small version of its experiment in ``make test`` and the full one in ``make chaos``
(``CHAOS_FULL=1``); both write their figures to ``build/chaos/<experiment>.json`` (:mod:`tests.chaos.figures`).
"""
