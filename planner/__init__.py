"""vramfit-plan: sizes GPU node pools across all InferenceServices with OR-tools, prices
scale-to-zero, writes capacity reports, and simulates scale-up bursts per placement policy."""
