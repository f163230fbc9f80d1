// Tests that train models are CPU-bound and use torch's own threads; run classes one at a time.
[assembly: DoNotParallelize]
