"""The Docker images built and started for real (``make test-images``, run by ``make test``)."""
