"""The LifeTime Deployment API v2 (the subset CI/CD pipelines use), served under /lifetimeapi/rest/v2."""
