"""Async Kite Connect v3 client; every broker failure leaves it as an AppError."""
