"""Small shared pieces: clock and IST calendar, cookie signing, credential encryption."""
