"""The pipeline's state as pictures, for the report, the live console and the notebook.

One snapshot of everything the views need, Plotly figures drawn from it, and the self-contained HTML report
(``safedeploy report``, ``make report``).

``snapshot.py`` collects (``collect_snapshot``) into the frozen dataclasses of ``views.py``, with the readers
``model_views.py`` (versions and their quality baselines), ``deployments.py`` (the ledger and each variant's
traffic, read through ``endpoint_metrics.py``) and ``monitoring_series.py`` (drift, quality, canary over time);
``figures.py`` draws (one function per chart, no I/O); ``html_report.py`` writes the page. The live console and
the notebook use the same snapshot and figures.
"""
