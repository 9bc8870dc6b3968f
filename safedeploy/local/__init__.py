"""Pipeline-side adapters of the local backend, run by the pipeline's process.

Start and find the runtime (daemon), deploy to it (host), drive production on it (prod_host).
"""
