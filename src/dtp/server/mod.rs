//! The DTP host service: serves manifests and files read-only over HTTP/1.1.
