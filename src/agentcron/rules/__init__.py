"""Pure rules: budgets, pricing, retry delays and identifiers. No I/O, no clock reads."""
