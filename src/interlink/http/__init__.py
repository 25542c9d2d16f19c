"""HTTP layer: app factory, auth dependency, problem+json errors, one thin router per domain."""
