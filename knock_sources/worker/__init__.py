"""The worker half of the pipeline: processing a logged event, idempotency, jobs, dispatch and sweep."""
