"""CDKTF (Python) base infrastructure of the pipeline on AWS, one Terraform root per environment.

Importing this package is cheap: only :mod:`cdktf_app.stack` and :mod:`cdktf_app.app` (and the construct modules
they use) import cdktf and the prebuilt AWS provider bindings, which take the better part of a minute to load.
"""
