"""Durable storage of attestations, batches, and the mirrored chain history."""
