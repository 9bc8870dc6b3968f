"""HTTP shared by the runtime and the serving instances.

The small HTTP/1.1 server, the event loop, AWS-shaped errors, SigV4 signing and verification, the loopback
Host guard, strict JSON documents.
"""
