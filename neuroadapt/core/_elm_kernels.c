/* Sparse-input projection kernels of the ELM neuron (see neuroadapt/core/elm_input.py).
 *
 * x is a dense row-major (R, K) matrix of spike counts, mostly zeros; wt is (K, H).
 *   nnz:      the non-zero entries of x as rows (row_ptr, col, val): one pass over x
 *   project:  out[r, :]  = sum_k x[r, k] * wt[k, :]        (out = x @ wt)
 *   transpose: the same entries grouped by (block of rows, column)
 *   wgrad:    gwt[k, :] = sum_r x[r, k] * g[r, :]        (gwt = x^T @ g), from the grouped list
 * The forward pass builds the list once, the backward pass regroups it: only the non-zero
 * entries of x cost work, H multiply-adds each.  project and wgrad keep a block of output
 * columns in vector registers while they run over a row's (column's) entries: one load + one
 * multiply-add per vector and entry, one store per block.  Summation order: ascending k
 * (project); ascending r within each block of rows, blocks added in order (wgrad).
 *   decay_sum: xs[b, :] = sum_t decay[t] x[t, b, :] from the list (the ELM's final trace)
 * GCC/Clang vector extensions (no Python or torch headers): the compiler maps them to whatever
 * vector ISA the flags allow (SSE2 baseline, AVX2 with -mavx2); only the float32 listing pass has
 * an AVX2-intrinsics version (under #ifdef __AVX2__, the plain loop otherwise).
 * The second half of the file is the ELM memory recurrence (_elm_scan.h, see elm_scan.py).
 */
#include <stdlib.h>
#include <string.h>

/* 32-byte vectors of float / double, loadable from any 4 / 8-byte aligned address */
typedef float vf32 __attribute__((vector_size(32), aligned(4)));
typedef double vf64 __attribute__((vector_size(32), aligned(8)));
#define NB 8 /* vectors per register block: 64 floats / 32 doubles */

/* returns the number of non-zeros, or -1 if there are more than cap (arrays then unusable) */
#define DEFINE_NNZ(NAME, T)                                                            \
long NAME(const T *x, long R, long K, long cap, int *row_ptr, int *col, T *val) {      \
    long n = 0;                                                                        \
    for (long r = 0; r < R; ++r) {                                                     \
        const T *xr = x + r * K;                                                       \
        row_ptr[r] = (int)n;                                                           \
        if (n + K > cap) {                    /* near the end: check every entry */    \
            for (long k = 0; k < K; ++k) {                                             \
                if (xr[k] != (T)0) {                                                   \
                    if (n == cap) return -1;                                           \
                    col[n] = (int)k; val[n] = xr[k]; ++n;                              \
                }                                                                      \
            }                                                                          \
        } else {                              /* branch-free: always write, advance on non-zero */ \
            for (long k = 0; k < K; ++k) {                                             \
                col[n] = (int)k; val[n] = xr[k]; n += (xr[k] != (T)0);                 \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    row_ptr[R] = (int)n;                                                               \
    return n;                                                                          \
}

/* o[h] OP sum over i in [b, e) of val[i] * src[idx[i] * H + h], for every h < H: NB vectors of
 * accumulators at a time, then single vectors, then scalars (OP is = or +=) */
#define GATHER_SUM(T, V, src, idx, b, e, o, H, OP)                                     \
    do {                                                                               \
        enum { W_ = (int)(sizeof(V) / sizeof(T)) };                                    \
        long h0 = 0;                                                                   \
        for (; h0 + NB * W_ <= (H); h0 += NB * W_) {                                   \
            V acc[NB];                                                                 \
            for (int j = 0; j < NB; ++j) acc[j] = (V){0};                              \
            for (int i = (b); i < (e); ++i) {                                          \
                const T v = val[i];                                                    \
                const V *w = (const V *)((src) + (long)(idx)[i] * (H) + h0);           \
                for (int j = 0; j < NB; ++j) acc[j] += v * w[j];                       \
            }                                                                          \
            for (int j = 0; j < NB; ++j) ((V *)((o) + h0))[j] OP acc[j];               \
        }                                                                              \
        for (; h0 + W_ <= (H); h0 += W_) {                                             \
            V acc = (V){0};                                                            \
            for (int i = (b); i < (e); ++i)                                            \
                acc += val[i] * *(const V *)((src) + (long)(idx)[i] * (H) + h0);       \
            *(V *)((o) + h0) OP acc;                                                   \
        }                                                                              \
        for (; h0 < (H); ++h0) {                                                       \
            T acc = 0;                                                                 \
            for (int i = (b); i < (e); ++i) acc += val[i] * (src)[(long)(idx)[i] * (H) + h0]; \
            (o)[h0] OP acc;                                                            \
        }                                                                              \
    } while (0)

#define DEFINE_PROJECT(NAME, T, V)                                                     \
void NAME(const int *row_ptr, const int *col, const T *val, const T *wt, T *out,       \
          long R, long H) {                                                            \
    for (long r = 0; r < R; ++r) {                                                     \
        const int b = row_ptr[r], e = row_ptr[r + 1];                                  \
        T *o = out + r * H;                                                            \
        GATHER_SUM(T, V, wt, col, b, e, o, H, =);                                      \
    }                                                                                  \
}

/* the same entries grouped by (block of RB rows, column): a stable counting sort, so within a
 * group the rows stay in ascending order.  ptr has nb * K + 1 entries, nb = ceil(R / RB). */
#define DEFINE_TRANSPOSE(NAME, T)                                                      \
void NAME(const int *row_ptr, const int *col, const T *val, long R, long K, long RB,   \
          int *ptr, int *row, T *val_t) {                                              \
    const long nb = (R + RB - 1) / RB, nk = nb * K;                                    \
    memset(ptr, 0, sizeof(int) * (size_t)(nk + 1));                                   \
    for (long r = 0; r < R; ++r)                                                       \
        for (int i = row_ptr[r]; i < row_ptr[r + 1]; ++i) ++ptr[(r / RB) * K + col[i] + 1]; \
    for (long k = 0; k < nk; ++k) ptr[k + 1] += ptr[k];                                \
    for (long r = 0; r < R; ++r) {                                                     \
        for (int i = row_ptr[r]; i < row_ptr[r + 1]; ++i) {                            \
            const int j = ptr[(r / RB) * K + col[i]]++;                                \
            row[j] = (int)r; val_t[j] = val[i];                                        \
        }                                                                              \
    }                                                                                  \
    for (long k = nk; k > 0; --k) ptr[k] = ptr[k - 1];                                 \
    ptr[0] = 0;                                                                        \
}

/* gwt = x^T g from the grouped entries: per block of rows (a slice of g that stays in cache) and
 * column, sum the rows' g in vector registers, then add the block's sum into gwt's row */
#define DEFINE_WGRAD(NAME, T, V)                                                       \
void NAME(const int *ptr, const int *row, const T *val, const T *g, T *gwt,            \
          long nb, long K, long H) {                                                   \
    memset(gwt, 0, sizeof(T) * (size_t)(K * H));                                       \
    for (long q = 0; q < nb * K; ++q) {                                                \
        const int b = ptr[q], e = ptr[q + 1];                                          \
        if (b == e) continue;                                                          \
        T *o = gwt + (q % K) * H;                                                      \
        GATHER_SUM(T, V, g, row, b, e, o, H, +=);                                      \
    }                                                                                  \
}

#if defined(__AVX2__)
/* float32 with AVX2: 8 entries per compare; the non-zero ones are packed to the front with one
 * permutation (table indexed by the 8-bit mask) and stored, n advancing by their count */
#include <immintrin.h>
DEFINE_NNZ(elm_nnz_f32_scalar, float)
long elm_nnz_f32(const float *x, long R, long K, long cap, int *row_ptr, int *col, float *val) {
    int lut[256][8];
    for (int m = 0; m < 256; ++m) {
        int j = 0;
        for (int b = 0; b < 8; ++b) if (m >> b & 1) lut[m][j++] = b;
        for (; j < 8; ++j) lut[m][j] = 0;
    }
    long n = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (long r = 0; r < R; ++r) {
        const float *xr = x + r * K;
        if (n + K > cap) {   /* near the cap: the checked scalar pass from here on */
            long rest = elm_nnz_f32_scalar(xr, R - r, K, cap - n, row_ptr + r, col + n, val + n);
            if (rest < 0) return -1;
            for (long i = r; i <= R; ++i) row_ptr[i] += (int)n;
            return n + rest;
        }
        row_ptr[r] = (int)n;
        long k = 0;
        for (; k + 8 <= K; k += 8) {
            const __m256 v = _mm256_loadu_ps(xr + k);
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
            const __m256i perm = _mm256_loadu_si256((const __m256i *)lut[m]);
            _mm256_storeu_ps(val + n, _mm256_permutevar8x32_ps(v, perm));
            _mm256_storeu_si256((__m256i *)(col + n), _mm256_add_epi32(perm, _mm256_set1_epi32((int)k)));
            n += __builtin_popcount((unsigned)m);
        }
        for (; k < K; ++k) { col[n] = (int)k; val[n] = xr[k]; n += (xr[k] != 0.0f); }
    }
    row_ptr[R] = (int)n;
    return n;
}
#else
DEFINE_NNZ(elm_nnz_f32, float)
#endif
DEFINE_NNZ(elm_nnz_f64, double)
DEFINE_PROJECT(elm_project_f32, float, vf32)
DEFINE_PROJECT(elm_project_f64, double, vf64)
DEFINE_TRANSPOSE(elm_transpose_f32, float)
DEFINE_TRANSPOSE(elm_transpose_f64, double)
DEFINE_WGRAD(elm_wgrad_f32, float, vf32)
DEFINE_WGRAD(elm_wgrad_f64, double, vf64)

/* xs[b, k] = sum_t decay[t] x[t, b, k] from the non-zero list of x (rows r = t B + b), t ascending */
#define DEFINE_DECAY_SUM(NAME, T)                                                      \
void NAME(const int *row_ptr, const int *col, const T *val, long Tn, long B, long K,   \
          const T *decay, T *xs) {                                                     \
    memset(xs, 0, sizeof(T) * (size_t)(B * K));                                        \
    for (long t = 0; t < Tn; ++t)                                                      \
        for (long b = 0; b < B; ++b) {                                                 \
            const long r = t * B + b;                                                  \
            for (int i = row_ptr[r]; i < row_ptr[r + 1]; ++i)                          \
                xs[b * K + col[i]] += decay[t] * val[i];                               \
        }                                                                              \
}
DEFINE_DECAY_SUM(elm_decay_sum_f32, float)
DEFINE_DECAY_SUM(elm_decay_sum_f64, double)

/* ----------------------------------------------------------------- memory recurrence */
#define TANH_A 1.7159
#define TANH_B (2.0 / 3.0)
/* 1 / i! */
#define IF_0 1.0
#define IF_1 1.0
#define IF_2 0.5
#define IF_3 0.16666666666666666
#define IF_4 0.041666666666666664
#define IF_5 0.008333333333333333
#define IF_6 0.001388888888888889
#define IF_7 0.0001984126984126984
#define IF_8 2.48015873015873e-05
#define IF_9 2.7557319223985893e-06
#define IF_10 2.755731922398589e-07
#define IF_11 2.505210838544172e-08
#define IF_12 2.08767569878681e-09
#define IF_13 1.6059043836821613e-10

typedef void (*gemm_f32)(const char *, const char *, const long long *, const long long *, const long long *,
                         const float *, const float *, const long long *, const float *, const long long *,
                         const float *, float *, const long long *, long, long);
typedef void (*gemm_f64)(const char *, const char *, const long long *, const long long *, const long long *,
                         const double *, const double *, const long long *, const double *, const long long *,
                         const double *, double *, const long long *, long, long);

/* the loop's products with a packed weight (float32, AVX2 + FMA): on unless elm_set_packed(0) */
static int elm_packed_on = 1;
void elm_set_packed(int on) { elm_packed_on = on; }
#if defined(__AVX2__) && defined(__FMA__)
#include "_elm_pgemm.h"
int elm_packed_available(void) { return 1; }
#define PK_FLOAT 1
#else
int elm_packed_available(void) { return 0; }
#define PK_FLOAT 0
#endif

#define T float
#define SUF f32
#define GEMM gemm_f32
#define UINT unsigned int
#define MANT 23
#define BIAS 127u
#define MAGIC 12582912.0f          /* 1.5 * 2^23 */
#define MAGIC_BITS 0x4B400000u
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.428606765330187e-06f
#define EXP_LO -87.0f
#define EXP_HI 88.0f
#define DEG 7                      /* |r| <= ln2/2: truncation 5e-9 relative, under float rounding */
#include "_elm_scan.h"
#undef T
#undef SUF
#undef GEMM
#undef UINT
#undef MANT
#undef BIAS
#undef MAGIC
#undef MAGIC_BITS
#undef LN2_HI
#undef LN2_LO
#undef EXP_LO
#undef EXP_HI
#undef DEG
#undef PK_FLOAT
#define PK_FLOAT 0

#define T double
#define SUF f64
#define GEMM gemm_f64
#define UINT unsigned long long
#define MANT 52
#define BIAS 1023ull
#define MAGIC 6755399441055744.0   /* 1.5 * 2^52 */
#define MAGIC_BITS 0x4338000000000000ull
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define EXP_LO -708.0
#define EXP_HI 709.0
#define DEG 13                     /* truncation 5e-18 relative, under double rounding */
#include "_elm_scan.h"
