"""The network edge: listener, connections, framing and dispatch to handlers.

Nothing below this package touches sockets; handlers get decoded requests and return
response bodies.
"""
