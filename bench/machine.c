// Machine probe. Methods (also printed in the benchmark header and stored in the HDF5 file):
//
// Clock. One thread runs a long chain of dependent register-to-register integer adds
// (`add r1, r0` repeated, each reading the previous result). An integer add has a latency of
// exactly one cycle on every x86-64 core of the last 15 years (and on AArch64 cores), and a chain
// cannot be overlapped, so the chain runs at one add per cycle whatever the issue width: the loop's
// own counter and branch run on other ALUs in parallel. clock = adds / seconds. A register operand
// (not an immediate) keeps renamers that fold small immediate adds from eliminating the chain. The
// best of 30 ≈ 1 ms trials is kept, so a trial that was interrupted or preempted (VMs) does not
// count. A chain of 64-bit multiplies (3-cycle latency) gives an independent cross-check. The
// result is the clock the core actually runs at under load (turbo included), which is what the
// kernels see — unlike /proc/cpuinfo "cpu MHz", which in a VM is the host's nominal clock.
//
// FP32 FMA throughput. One thread runs a loop of vector FMAs `acc_i = acc_i * a + b` over many
// independent accumulators (16 for 512-bit, 12 for 256-bit: more than FMA latency × FMA pipes, so
// the pipes, not the latency, are the limit), for every vector width the CPU supports; the fastest
// width counts. flops/cycle = FLOPs / seconds / clock, then rounded to the nearest power of two,
// because the real value is FMA pipes × lanes × 2 (e.g. Zen 4: two 256-bit FMA pipes → 32, also
// when fed 512-bit FMAs; Skylake-SP Gold/Platinum: two 512-bit pipes → 64; Haswell..Zen 3: 32).
// Rounding absorbs the few percent lost to the loop and to frequency drops under wide vectors.
// The peak is then cores × clock × flops/cycle (physical cores: SMT siblings share the FMA pipes).
#include "machine.h"
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "cli.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FB_X86 1
#endif

static volatile uint64_t sink_u;
static volatile float sink_f;

// ---- Clock ----

#define ADDS_PER_ITER 200

static double add_chain_seconds(long iters) {
    uint64_t x = 0, one = 1;
    double t0 = fb_now();
    for (long i = 0; i < iters; i++) {
#if defined(__x86_64__)
        __asm__ volatile(".rept 200\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
#elif defined(__aarch64__)
        __asm__ volatile(".rept 200\n\tadd %0, %0, %1\n\t.endr" : "+r"(x) : "r"(one));
#else
        for (int k = 0; k < ADDS_PER_ITER; k++) __asm__ volatile("" : "+r"(x) : "r"(one));  // best effort
        x += ADDS_PER_ITER;
#endif
    }
    double t = fb_now() - t0;
    sink_u = x;
    return t;
}

// Cross-check: a chain of 64-bit multiplies, 3 cycles of latency each on the same cores.
static double imul_chain_seconds(long iters) {
    uint64_t x = 1, three = 3;
    double t0 = fb_now();
    for (long i = 0; i < iters; i++) {
#if defined(__x86_64__)
        __asm__ volatile(".rept 100\n\timulq %1, %0\n\t.endr" : "+r"(x) : "r"(three));
#elif defined(__aarch64__)
        __asm__ volatile(".rept 100\n\tmul %0, %0, %1\n\t.endr" : "+r"(x) : "r"(three));
#else
        x = x * three;
#endif
    }
    double t = fb_now() - t0;
    sink_u = x;
    return t;
}

// 4e6 adds ≈ 1 ms: trials shorter than a timer tick, so the best ones saw no interrupt or
// preemption (trials of 5-500 ms read 1-2 % low here, in a VM).
#define CLOCK_ITERS 20000L
#define TRIALS 30

static double clock_trial_ghz(void) {
    return (double)CLOCK_ITERS * ADDS_PER_ITER / add_chain_seconds(CLOCK_ITERS) * 1e-9;
}
static double imul_trial_ghz(void) {
    return (double)CLOCK_ITERS * 100 * 3 / imul_chain_seconds(CLOCK_ITERS) * 1e-9;
}

// ---- FMA throughput ----
// Each loop returns a value depending on every accumulator so nothing is dead code. a < 1 and b > 0
// make every accumulator converge to b / (1 - a): no overflow, no denormals.

#define FMA_A 0.99999f
#define FMA_B 1e-5f

// The accumulators are named variables, not an array, so that every optimisation level (the
// sanitizer build uses -O1) keeps them in registers: an array spilled to memory would measure
// store-to-load forwarding instead of the FMA pipes.
#define FMA_ACC12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define FMA_ACC16(X) FMA_ACC12(X) X(12) X(13) X(14) X(15)

#ifdef FB_X86
__attribute__((target("avx512f"), noinline)) static double fma_loop_512(long iters) {
#define DECL(k) __m512 acc##k = _mm512_set1_ps(0.5f + 0.01f * k);
#define STEP(k) acc##k = _mm512_fmadd_ps(acc##k, a, b);
#define SUM(k) s = _mm512_add_ps(s, acc##k);
    FMA_ACC16(DECL)
    __m512 a = _mm512_set1_ps(FMA_A), b = _mm512_set1_ps(FMA_B), s = _mm512_setzero_ps();
    for (long i = 0; i < iters; i++) { FMA_ACC16(STEP) }
    FMA_ACC16(SUM)
    sink_f = _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"), noinline)) static double fma_loop_256(long iters) {
#define DECL(k) __m256 acc##k = _mm256_set1_ps(0.5f + 0.01f * k);
#define STEP(k) acc##k = _mm256_fmadd_ps(acc##k, a, b);
#define SUM(k) s = _mm256_add_ps(s, acc##k);
    FMA_ACC12(DECL)
    __m256 a = _mm256_set1_ps(FMA_A), b = _mm256_set1_ps(FMA_B), s = _mm256_setzero_ps();
    for (long i = 0; i < iters; i++) { FMA_ACC12(STEP) }
    FMA_ACC12(SUM)
    float v[8];
    _mm256_storeu_ps(v, s);
    sink_f = v[0] + v[7];
#undef DECL
#undef STEP
#undef SUM
    return (double)iters * 12 * 8 * 2;
}
#endif

// Portable fallback: 4-lane vectors, multiply + add (2 FLOPs per lane, like an FMA; the compiler
// contracts them into FMAs where the target has them).
typedef float v4f __attribute__((vector_size(16)));
__attribute__((noinline)) static double fma_loop_128(long iters) {
#define DECL(k) v4f acc##k = (v4f){ 0.5f, 0.6f, 0.7f, 0.8f } + 0.01f * k;
#define STEP(k) acc##k = acc##k * a + b;
#define SUM(k) s += acc##k;
    FMA_ACC12(DECL)
    v4f a = { FMA_A, FMA_A, FMA_A, FMA_A }, b = { FMA_B, FMA_B, FMA_B, FMA_B }, s = { 0, 0, 0, 0 };
    for (long i = 0; i < iters; i++) { FMA_ACC12(STEP) }
    FMA_ACC12(SUM)
    sink_f = s[0] + s[3];
#undef DECL
#undef STEP
#undef SUM
    return (double)iters * 12 * 4 * 2;
}

static double fma_trial_gflops(double (*loop)(long), long iters) {
    double t0 = fb_now();
    double flops = loop(iters);
    return flops / (fb_now() - t0) * 1e-9;
}

// ---- CPU identity ----

static void read_cpuinfo(fb_machine *m) {
    snprintf(m->cpu_model, sizeof m->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    int have_model = 0, have_mhz = 0;
    while (fgets(line, sizeof line, f) && !(have_model && have_mhz)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t') val++;
        val[strcspn(val, "\n")] = '\0';
        if (!have_model && strncmp(line, "model name", 10) == 0) {
            snprintf(m->cpu_model, sizeof m->cpu_model, "%s", val);
            have_model = 1;
        } else if (!have_mhz && strncmp(line, "cpu MHz", 7) == 0) {
            m->reported_mhz = atof(val);
            have_mhz = 1;
        }
    }
    fclose(f);
}

// Logical CPUs in our affinity mask, their list as ranges, and the physical cores among them
// (the first CPU of each thread_siblings_list stands for its core).
static void read_topology(fb_machine *m) {
    cpu_set_t set;
    CPU_ZERO(&set);
    // With OMP_PLACES / OMP_PROC_BIND the runtime has already pinned this (the initial) thread to
    // the first place, so its own mask is not the process's: take the union of the places instead.
    int nplaces = omp_get_num_places();
    for (int p = 0; p < nplaces; p++) {
        int n = omp_get_place_num_procs(p), ids[CPU_SETSIZE];
        if (n <= 0 || n > CPU_SETSIZE) continue;
        omp_get_place_proc_ids(p, ids);
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], &set);
    }
    if (CPU_COUNT(&set) == 0 && sched_getaffinity(0, sizeof set, &set) != 0) {
        m->logical_cpus = m->cores = omp_get_num_procs();
        snprintf(m->cpus_allowed, sizeof m->cpus_allowed, "unknown");
        return;
    }
    m->logical_cpus = CPU_COUNT(&set);
    size_t used = 0;
    m->cpus_allowed[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
        if (used < sizeof m->cpus_allowed)
            used += (size_t)snprintf(m->cpus_allowed + used, sizeof m->cpus_allowed - used, e > c ? "%s%d-%d" : "%s%d",
                                     used ? "," : "", c, e);
        c = e;
    }
    cpu_set_t reps;
    CPU_ZERO(&reps);
    int cores = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
        FILE *f = fopen(path, "r");
        int first = c;
        if (f) {
            if (fscanf(f, "%d", &first) != 1) first = c;
            fclose(f);
        }
        if (first >= 0 && first < CPU_SETSIZE && !CPU_ISSET(first, &reps)) {
            CPU_SET(first, &reps);
            cores++;
        }
    }
    m->cores = cores > 0 ? cores : m->logical_cpus;
}

int fb_physical_cores(void) {
    fb_machine m;
    memset(&m, 0, sizeof m);
    read_topology(&m);
    return m.cores > 0 ? m.cores : 1;
}

static void read_isa(fb_machine *m) {
    m->isa[0] = '\0';
#ifdef FB_X86
    __builtin_cpu_init();
    size_t used = 0;
    const struct { const char *name; int on; } feats[] = {
        { "avx512f", __builtin_cpu_supports("avx512f") },
        { "avx2", __builtin_cpu_supports("avx2") },
        { "fma", __builtin_cpu_supports("fma") },
        { "avx", __builtin_cpu_supports("avx") },
        { "sse4.2", __builtin_cpu_supports("sse4.2") },
    };
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (feats[i].on && used < sizeof m->isa)
            used += (size_t)snprintf(m->isa + used, sizeof m->isa - used, "%s%s", used ? "+" : "", feats[i].name);
#endif
    if (!m->isa[0]) snprintf(m->isa, sizeof m->isa, "generic");
}

// ---- BLAS ----

static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void read_blas(fb_machine *m) {
    const char *cfg = openblas_get_config(), *core = openblas_get_corename();
    snprintf(m->blas_config, sizeof m->blas_config, "%s", cfg ? cfg : "unknown");
    snprintf(m->blas_corename, sizeof m->blas_corename, "%s", core ? core : "unknown");
    // Trim the trailing blank OpenBLAS leaves in its config string.
    for (size_t n = strlen(m->blas_config); n > 0 && m->blas_config[n - 1] == ' '; n--) m->blas_config[n - 1] = '\0';
    switch (openblas_get_parallel()) {
    case 0: snprintf(m->blas_parallel, sizeof m->blas_parallel, "sequential"); break;
    case 1: snprintf(m->blas_parallel, sizeof m->blas_parallel, "pthreads"); break;
    case 2: snprintf(m->blas_parallel, sizeof m->blas_parallel, "openmp"); break;
    default: snprintf(m->blas_parallel, sizeof m->blas_parallel, "unknown"); break;
    }
    Dl_info info;
    char real[4096];
    if (dladdr((void *)cblas_sgemm, &info) && info.dli_fname)   // resolve Debian's alternatives links
        copy_str(m->blas_library, sizeof m->blas_library, realpath(info.dli_fname, real) ? real : info.dli_fname);
    else
        snprintf(m->blas_library, sizeof m->blas_library, "unknown");
    const char *env = getenv("OPENBLAS_CORETYPE");
    snprintf(m->openblas_coretype, sizeof m->openblas_coretype, "%s", env ? env : "");
}

// ---- Probe ----

void fb_machine_probe(fb_machine *m) {
    memset(m, 0, sizeof *m);
    read_cpuinfo(m);
    read_topology(m);
    read_isa(m);
    read_blas(m);

    // Clock and FMA trials alternate, so their best values come from the same stretch of time
    // (a VM's clock drifts with the host's load); the first round only warms the units up.
    typedef struct { int bits; double (*loop)(long); long iters; double best; } fma_width;
    fma_width w[3] = { { 128, fma_loop_128, 400000, 0 } };
    int nw = 1;
#ifdef FB_X86
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        w[nw++] = (fma_width){ 256, fma_loop_256, 500000, 0 };
    if (__builtin_cpu_supports("avx512f")) w[nw++] = (fma_width){ 512, fma_loop_512, 250000, 0 };
#endif
    double imul_ghz = 0;
    for (int trial = 0; trial <= TRIALS; trial++) {
        double c = clock_trial_ghz(), ci = imul_trial_ghz();
        if (trial > 0 && c > m->clock_ghz) m->clock_ghz = c;
        if (trial > 0 && ci > imul_ghz) imul_ghz = ci;
        for (int k = 0; k < nw; k++) {
            double g = fma_trial_gflops(w[k].loop, w[k].iters);
            if (trial > 0 && g > w[k].best) w[k].best = g;
        }
    }
    snprintf(m->clock_method, sizeof m->clock_method,
             "chain of 4e6 dependent integer adds (1 cycle each) timed on one core, best of %d 1-ms trials "
             "(cross-check, 3-cycle imul chain: %.2f GHz; /proc/cpuinfo says %.0f MHz)",
             TRIALS, imul_ghz, m->reported_mhz);
    char widths[128];
    size_t used = 0;
    for (int k = 0; k < nw; k++) {
        used += (size_t)snprintf(widths + used, sizeof widths - used, "%s%d-bit %.1f", k ? ", " : "", w[k].bits, w[k].best);
        if (w[k].best > m->fma_gflops_core) { m->fma_gflops_core = w[k].best; m->fma_vector_bits = w[k].bits; }
    }
    m->flops_per_cycle_measured = m->clock_ghz > 0 ? m->fma_gflops_core / m->clock_ghz : 0;
    m->flops_per_cycle = m->flops_per_cycle_measured > 0
                             ? (int)lround(exp2(round(log2(m->flops_per_cycle_measured)))) : 0;
    snprintf(m->fma_method, sizeof m->fma_method,
             "vector FMAs on independent accumulators, one core, best of %d (GFLOP/s: %s); %d-bit: "
             "%.1f GFLOP/s / %.2f GHz = %.1f FLOPs/cycle, rounded to %d (= %d FP32 FMAs/cycle x 2)",
             TRIALS, widths, m->fma_vector_bits, m->fma_gflops_core, m->clock_ghz, m->flops_per_cycle_measured,
             m->flops_per_cycle, m->flops_per_cycle / 2);

    m->peak_gflops_core = m->clock_ghz * m->flops_per_cycle;
    m->peak_gflops = m->cores * m->peak_gflops_core;
    snprintf(m->peak_method, sizeof m->peak_method,
             "%d cores x %.2f GHz (measured) x %d FP32 FLOPs/cycle (measured, rounded) = %.1f GFLOP/s",
             m->cores, m->clock_ghz, m->flops_per_cycle, m->peak_gflops);
}

double fb_machine_peak(const fb_machine *m, int threads) {
    return (threads < m->cores ? threads : m->cores) * m->peak_gflops_core;
}

void fb_set_threads(int threads) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

int fb_sgemm_measure(int n, int threads, int warmup, int reps, fb_sgemm_ceiling *out) {
    size_t nn = (size_t)n * n, bytes = (nn * sizeof(float) + 63) / 64 * 64;
    float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes), *c = aligned_alloc(64, bytes);
    double *t = malloc((size_t)(reps > 0 ? reps : 1) * sizeof *t);
    if (!a || !b || !c || !t) { free(a); free(b); free(c); free(t); return -1; }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < nn; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        a[i] = (float)((s >> 40) * 0x1p-24) * 2.0f - 1.0f;
        b[i] = (float)((s & 0xffffff) * 0x1p-24) * 2.0f - 1.0f;
        c[i] = 0.0f;
    }
    fb_set_threads(threads);
    // Warm-up: `warmup` calls and at least 0.2 s, so that new threads have been spread over the
    // cores by the scheduler (unbound threads start next to their creator) and clocks have settled.
    double w0 = fb_now();
    for (int r = 0; r < warmup || fb_now() - w0 < 0.2; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = fb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = fb_now() - t0;
    }
    fb_stats st = fb_stats_of(t, reps);
    double flops = 2.0 * n * n * n;
    out->n = n;
    out->threads = threads;
    out->reps = reps;
    out->median_gflops = flops / st.median * 1e-9;
    out->min_gflops = flops / st.max * 1e-9;
    out->max_gflops = flops / st.min * 1e-9;
    free(a); free(b); free(c); free(t);
    return 0;
}

void fb_cpu_snapshot_take(fb_cpu_snapshot *s) {
    memset(s, 0, sizeof *s);
    s->t = fb_now();
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                        (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    unsigned long long v[8] = { 0 };   // user nice system idle iowait irq softirq steal
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) == 8) {
        s->busy = v[0] + v[1] + v[2] + v[5] + v[6];
        s->steal = v[7];
        s->ok = 1;
    }
    fclose(f);
}

void fb_cpu_background(const fb_cpu_snapshot *a, const fb_cpu_snapshot *b, double *other_cores, double *steal_cores) {
    double dt = b->t - a->t, hz = (double)sysconf(_SC_CLK_TCK);
    *other_cores = *steal_cores = NAN;
    if (!a->ok || !b->ok || dt <= 0 || hz <= 0) return;
    double busy = (double)(b->busy - a->busy) / hz, mine = b->self_cpu_s - a->self_cpu_s;
    *other_cores = fmax(0.0, (busy - mine) / dt);
    *steal_cores = (double)(b->steal - a->steal) / hz / dt;
}
