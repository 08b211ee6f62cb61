"""What the tests share: HTTP to the services, metric scrapes, Kafka reads and a bounded load.

Everything here talks to 127.0.0.1 only and is bounded in time: `http` refuses any
other host, every read and wait has a deadline.
"""
