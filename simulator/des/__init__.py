"""Discrete-event simulation (simpy) on top of the roofline cost model.

- `kernel_pipeline`: a tiled kernel (DMA -> dequant -> compute, 1-3 buffers, launch gap)
  and a decode step as its kernel sequence;
- `workload`: seeded Poisson arrivals or a trace CSV;
- `tables`: iteration cost tables from one vectorised cost-model call each;
- `serving`: continuous batching on one device, per-request and aggregate statistics;
- `sizing`: the fewest replicas meeting p99 TTFT / TPOT SLOs.
"""
