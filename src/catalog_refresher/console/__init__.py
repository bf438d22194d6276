"""The operator's terminal: a client of the running service's API, and what it prints.

The operator commands (``status``, and the section 8 commands that steer a running
service) talk to the service over its own HTTP API, so that what they show and do is
exactly what the API shows and does, on whichever replica they reach.
"""
