"""The orchestrators: the command line, the demo and the report. Nothing below imports them."""
