"""tradedesk: a multi-user dashboard and strategy-agent service for Zerodha Kite Connect traders."""
