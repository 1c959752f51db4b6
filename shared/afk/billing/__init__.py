"""Money: exact amounts, prices, quotes, and the reserve/settle protocol."""
