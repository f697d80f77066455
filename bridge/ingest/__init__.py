"""The receive side: the gRPC server and service, access control, acks and gRPC statuses."""
