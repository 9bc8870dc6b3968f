"""What the notebook (``notebooks/pipeline.ipynb``) shows and does beyond the pipeline facade.

A live view of an execution (:mod:`.follow`), the approval widget (:mod:`.approval_panel`), traffic through the
REST API while a deployment shifts it (:mod:`.traffic`), the calls to the dev endpoint and the monitoring read-outs
(:mod:`.endpoints`, :mod:`.monitoring`). They run in the notebook's kernel, the pipeline process; ``ipywidgets`` and
``IPython`` (the ``notebook`` dependency group) are imported only where a widget or a display is made, so the
rest also works from a script.
"""
