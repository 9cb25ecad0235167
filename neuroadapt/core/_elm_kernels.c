/* Sparse-input projection kernels of the ELM neuron (see neuroadapt/core/elm_input.py).
 *
 * x is a dense row-major (R, K) matrix of spike counts, mostly zeros; wt is (K, H).
 *   nnz:      the non-zero entries of x as rows (row_ptr, col, val): one pass over x
 *   project:  out[r, :]  = sum_k x[r, k] * wt[k, :]        (out = x @ wt)
 *   transpose: the same entries by column (col_ptr, row, val_t)
 * The weight gradient gwt = x^T @ g (gwt[k, :] = sum_r x[r, k] g[r, :]) is project applied to the
 * transposed list and g.  The forward pass builds the list once, the backward pass transposes
 * it: only the non-zero entries of x cost work, H multiply-adds each.  project keeps a block of
 * output columns in vector registers while it runs over a row's non-zeros (one load + one
 * multiply-add per vector and entry, one store per block).  Summation order is ascending k
 * (project) and ascending r (weight gradient), as in a plain loop.
 * GCC/Clang vector extensions only (no intrinsics, no Python or torch headers): the compiler
 * maps them to whatever vector ISA the flags allow (SSE2 baseline, AVX2 with -mavx2).
 */
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

#define DEFINE_PROJECT(NAME, T, V)                                                     \
void NAME(const int *row_ptr, const int *col, const T *val, const T *wt, T *out,       \
          long R, long H) {                                                            \
    enum { W = (int)(sizeof(V) / sizeof(T)) };                                         \
    for (long r = 0; r < R; ++r) {                                                     \
        const int b = row_ptr[r], e = row_ptr[r + 1];                                  \
        T *o = out + r * H;                                                            \
        long h0 = 0;                                                                   \
        for (; h0 + NB * W <= H; h0 += NB * W) {                                       \
            V acc[NB];                                                                 \
            for (int j = 0; j < NB; ++j) acc[j] = (V){0};                              \
            for (int i = b; i < e; ++i) {                                              \
                const T v = val[i];                                                    \
                const V *w = (const V *)(wt + (long)col[i] * H + h0);                  \
                for (int j = 0; j < NB; ++j) acc[j] += v * w[j];                       \
            }                                                                          \
            for (int j = 0; j < NB; ++j) ((V *)(o + h0))[j] = acc[j];                  \
        }                                                                              \
        for (; h0 + W <= H; h0 += W) {                                                 \
            V acc = (V){0};                                                            \
            for (int i = b; i < e; ++i)                                                \
                acc += val[i] * *(const V *)(wt + (long)col[i] * H + h0);              \
            *(V *)(o + h0) = acc;                                                      \
        }                                                                              \
        for (; h0 < H; ++h0) {                                                         \
            T acc = 0;                                                                 \
            for (int i = b; i < e; ++i) acc += val[i] * wt[(long)col[i] * H + h0];     \
            o[h0] = acc;                                                               \
        }                                                                              \
    }                                                                                  \
}

/* the same entries by column (col_ptr, row, val_t): a stable counting sort, so every column's
 * rows stay in ascending order; then gwt = x^T g is elm_project on (col_ptr, row, val_t, g) */
#define DEFINE_TRANSPOSE(NAME, T)                                                      \
void NAME(const int *row_ptr, const int *col, const T *val, long R, long K,            \
          int *col_ptr, int *row, T *val_t) {                                          \
    memset(col_ptr, 0, sizeof(int) * (size_t)(K + 1));                                 \
    const int n = row_ptr[R];                                                          \
    for (int i = 0; i < n; ++i) ++col_ptr[col[i] + 1];                                 \
    for (long k = 0; k < K; ++k) col_ptr[k + 1] += col_ptr[k];                         \
    for (long r = 0; r < R; ++r) {                                                     \
        for (int i = row_ptr[r]; i < row_ptr[r + 1]; ++i) {                            \
            const int j = col_ptr[col[i]]++;                                           \
            row[j] = (int)r; val_t[j] = val[i];                                        \
        }                                                                              \
    }                                                                                  \
    for (long k = K; k > 0; --k) col_ptr[k] = col_ptr[k - 1];                          \
    col_ptr[0] = 0;                                                                    \
}

DEFINE_NNZ(elm_nnz_f32, float)
DEFINE_NNZ(elm_nnz_f64, double)
DEFINE_PROJECT(elm_project_f32, float, vf32)
DEFINE_PROJECT(elm_project_f64, double, vf64)
DEFINE_TRANSPOSE(elm_transpose_f32, float)
DEFINE_TRANSPOSE(elm_transpose_f64, double)

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
