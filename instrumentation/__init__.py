"""Host collectors for otel-sysops: one metric family per module, pure parsers in `_linux`."""
