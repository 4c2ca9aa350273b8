"""RPC protocols carried over HTTP: XML-RPC and gRPC."""
