"""A plain python-telegram-bot bot with the advisor's intake questions: the benchmarks' baseline."""
