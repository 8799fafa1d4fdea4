"""Pure analysis: statistics, summaries, warnings, verdicts, the ceiling, comparisons."""
