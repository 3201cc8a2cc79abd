"""Access control: Kafka's ACL model (bindings and the filters that match them) and the
authorizer that decides each request by the ACLs in the cluster metadata."""
