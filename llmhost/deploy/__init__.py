"""Deploy: Kubernetes manifests and a Compose file made from a `Plan`."""
