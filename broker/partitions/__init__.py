"""The live side of each partition this node holds: its log, its idempotent-producer
state, its high watermark and the fetches waiting for new data."""
