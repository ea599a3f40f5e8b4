"""Pure parsers of Linux /proc and /sys text: no I/O, no state; malformed lines are counted, not raised."""
