"""The demo's first-run trading history: the shipped short strangle traded for kitesim's demo accounts over
past trading days, through the product's own sign-in, agents and sync (``python -m tradedesk.demo.seed``)."""
