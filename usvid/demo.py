"""The end-to-end demo behind ``make demo``: synth -> extract -> train -> predict, as far as each exists."""
