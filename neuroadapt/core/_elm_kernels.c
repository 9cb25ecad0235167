/* Sparse-input projection kernels of the ELM neuron (see neuroadapt/core/elm_input.py).
 *
 * x is a dense row-major (R, K) matrix of spike counts, mostly zeros; wt is (K, H).
 *   project:  out[r, :]  = sum_k x[r, k] * wt[k, :]        (out = x @ wt)
 *   wgrad:    gwt[k, :]  = sum_r x[r, k] * g[r, :]         (gwt = x^T @ g)
 * Only the non-zero entries of x cost work (H multiply-adds each); the zero test is one
 * compare per entry.  No Python or torch headers: built by the system C compiler on first use.
 */
#include <string.h>

#define DEFINE_PROJECT(NAME, T)                                                        \
void NAME(const T *x, const T *wt, T *out, long R, long K, long H) {                   \
    for (long r = 0; r < R; ++r) {                                                     \
        T *o = out + r * H;                                                            \
        const T *xr = x + r * K;                                                       \
        memset(o, 0, sizeof(T) * (size_t)H);                                           \
        for (long k = 0; k < K; ++k) {                                                 \
            const T v = xr[k];                                                         \
            if (v != (T)0) {                                                           \
                const T *w = wt + k * H;                                               \
                for (long h = 0; h < H; ++h) o[h] += v * w[h];                         \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

#define DEFINE_WGRAD(NAME, T)                                                          \
void NAME(const T *x, const T *g, T *gwt, long R, long K, long H) {                    \
    memset(gwt, 0, sizeof(T) * (size_t)(K * H));                                       \
    for (long r = 0; r < R; ++r) {                                                     \
        const T *xr = x + r * K;                                                       \
        const T *gr = g + r * H;                                                       \
        for (long k = 0; k < K; ++k) {                                                 \
            const T v = xr[k];                                                         \
            if (v != (T)0) {                                                           \
                T *w = gwt + k * H;                                                    \
                for (long h = 0; h < H; ++h) w[h] += v * gr[h];                        \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

DEFINE_PROJECT(elm_project_f32, float)
DEFINE_PROJECT(elm_project_f64, double)
DEFINE_WGRAD(elm_wgrad_f32, float)
DEFINE_WGRAD(elm_wgrad_f64, double)
