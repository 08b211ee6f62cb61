"""`make bench`: throughput, latency and drain figures of our stack beside the baseline's."""
