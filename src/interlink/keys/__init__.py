"""API keys: issue, hash, verify (with cache), scopes, rotation, rate limits, security audit."""
