"""kitesim: a standalone FastAPI app that speaks the Kite Connect v3 wire format over simulated accounts,
so tradedesk can be run, demonstrated and tested without a real broker."""
