"""Great Expectations suites, one per lake table (suites/<table>.json), and their runner."""
