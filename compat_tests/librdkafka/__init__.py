"""librdkafka's own test suite (Debian's source package) run against a Walrus broker."""
