// Benchmark runner: `npm run bench [-- NAME ...] [--size N]`. Placeholder replaced below.
console.log('no benchmarks yet');
