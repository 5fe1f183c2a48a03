// Machine probe for benchmark headers: what the CPU is, how fast it really runs, what its FP32
// peak is, which BLAS and which BLAS kernels this process got, and what SGEMM reaches here.
//
// Nothing is taken on trust from the OS: a VM's /proc/cpuinfo "cpu MHz" is the nominal (often the
// base) clock of the host, not the clock the core runs at, so the clock and the FP32 throughput
// are MEASURED (see machine.c for the methods) and the reported value is kept only for comparison.
//
//   peak (FP32, GFLOP/s) = cores × measured clock (GHz) × FLOPs/cycle
//   FLOPs/cycle          = measured FMA throughput per core / measured clock, rounded to the
//                          nearest power of two (= FMA pipes × vector lanes × 2)
#pragma once
#include <stddef.h>

typedef struct {
    // CPU
    char cpu_model[128];          // /proc/cpuinfo "model name"
    int logical_cpus;             // CPUs this process may run on (OpenMP places, else sched_getaffinity)
    int cores;                    // physical cores among them (SMT siblings counted once)
    char cpus_allowed[128];       // the affinity list, e.g. "0-1"
    char isa[64];                 // vector ISA the CPU supports, e.g. "avx512f+avx2+fma"
    double reported_mhz;          // /proc/cpuinfo "cpu MHz" (0 when absent): not trusted
    // Clock
    double clock_ghz;             // measured
    char clock_method[256];
    // FP32 FMA throughput (one core)
    int fma_vector_bits;          // width of the fastest FMA loop (128, 256, 512; 0 = scalar)
    double fma_gflops_core;       // measured GFLOP/s of that loop on one core
    double flops_per_cycle_measured;
    int flops_per_cycle;          // rounded (the vector unit's value)
    char fma_method[384];
    // Peak
    double peak_gflops_core;      // clock × flops_per_cycle
    double peak_gflops;           // cores × peak_gflops_core
    char peak_method[256];
    // BLAS
    char blas_config[256];        // openblas_get_config()
    char blas_corename[64];       // openblas_get_corename(): the kernel type OpenBLAS chose
    char blas_library[256];       // the shared object cblas_sgemm came from (dladdr)
    char blas_parallel[16];       // "sequential", "pthreads", "openmp"
    char openblas_coretype[64];   // OPENBLAS_CORETYPE from the environment ("" when unset)
} fb_machine;

// Physical cores among the CPUs this process may run on (cheap: reads sysfs; no measurement).
int fb_physical_cores(void);
// Probes everything above (≈ 0.5 s: the clock and FMA loops run a few times each, best kept).
void fb_machine_probe(fb_machine *m);
// Theoretical FP32 peak of `threads` threads: min(threads, cores) × peak per core.
double fb_machine_peak(const fb_machine *m, int threads);

// Sets the thread count of both OpenMP parallel regions and OpenBLAS.
void fb_set_threads(int threads);

// Median / min / max GFLOP/s of cblas_sgemm C (n×n) = A (n×n) · B (n×n) at the current thread
// count, after `warmup` untimed calls (and at least 0.2 s of them). Returns 0, or -1 when the
// buffers cannot be allocated.
typedef struct { int n, threads, reps; double median_gflops, min_gflops, max_gflops; } fb_sgemm_ceiling;
int fb_sgemm_measure(int n, int threads, int warmup, int reps, fb_sgemm_ceiling *out);

// Background load: how much CPU other processes (and the hypervisor, as steal time) took while the
// benchmark ran, from /proc/stat and getrusage. Other work on the same cores slows every timing,
// so the header and the HDF5 file report it.
typedef struct { double t, self_cpu_s; unsigned long long busy, steal; int ok; } fb_cpu_snapshot;
void fb_cpu_snapshot_take(fb_cpu_snapshot *s);
// Average cores' worth of CPU used by other processes, and stolen by the hypervisor, between a and b.
void fb_cpu_background(const fb_cpu_snapshot *a, const fb_cpu_snapshot *b, double *other_cores, double *steal_cores);
