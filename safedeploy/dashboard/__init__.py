"""The pipeline's state as pictures, for the report, the live console and the notebook.

One snapshot of everything the views need, Plotly figures drawn from it, and the self-contained HTML report
(``safedeploy report``, ``make report``).

``snapshot.py`` collects (typed dataclasses, no plotting), ``endpoint_metrics.py`` reads the endpoints' per-second
metrics from the local runtime, ``figures.py`` draws (one function per chart, no I/O), ``html_report.py`` writes
the page. The live console and the notebook use the same snapshot and figures.
"""
