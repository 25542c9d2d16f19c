"""One thin router per domain: parse, call a service inside a unit of work, shape the answer."""
