"""Outbound calls: the campaign runner on the job queue and its worker."""
