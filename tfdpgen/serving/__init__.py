"""Serving generators: a client for TensorFlow Serving (gRPC and REST) and a local stand-in server."""
