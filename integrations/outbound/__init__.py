"""Outbound calls: one dial, campaigns, the do-not-call list and what each call came to."""
