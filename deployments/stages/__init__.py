"""The two stages of a deployment: the runner (claim, heartbeat, failure mapping), Prepare, Continue."""
