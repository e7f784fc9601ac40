"""The benchmark harness: statistics, machine info, the results schema, workers, reports and plots.

The parent process (``benchmarks.harness.runner``) never imports a peer
framework; every target runs in its own worker process
(``benchmarks.harness.worker``) so that environment variables such as
``EMBER_CPU_KERNELS`` and thread limits apply to it alone.
"""
