"""Talking to the chain: the local node, deployment, and contract access."""
