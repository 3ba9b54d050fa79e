#pragma once
// The FP32 multiply-add throughput this machine reaches with the vectors sgemm uses (zmm with
// AVX-512, ymm with AVX2 and FMA, scalar fma otherwise): the yardstick for "x% of the FMA peak" in
// `ponder bench --train`. Measured, not computed from a spec sheet: clocks under load and shared
// cores differ from the nominal ones.
namespace ponder {

// Every one of `threads` threads runs independent fma chains (more than latency x ports) for about
// `seconds`; returns the summed GFLOP/s (2 FLOPs per lane per fma).
double fma_peak_gflops(int threads, double seconds = 0.25);

}  // namespace ponder
