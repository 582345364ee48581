/* Element-wise parts of one GRU time step, fused into one pass over [M, H] (see fused_gru.py).
 *
 * Layout: row-major float32. M rows (batch x agents), H hidden units; gate blocks in
 * nn.GRU's order (r, z, n), so gi and gh are [M, 3H]:
 *   r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),
 *   n = tanh(gi_n + r * gh_n),  h = (1 - z) * n + z * h_prev,
 * with gi = x W_ih^T + b_ih and gh = h_prev W_hh^T + b_hh computed by the caller (BLAS).
 * tanh(x) = 2 sigmoid(2x) - 1, so that one vectorised expf serves both gates.
 */
#include <math.h>

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Forward of one step: writes the gates (r, z, n) [M, 3H], gh_n [M, H] (both kept for the
 * backward) and the new hidden state h [M, H]. */
void gru_forward_step(int m, int hd, const float *gi, const float *gh, const float *h_prev,
                      float *gates, float *gh_n, float *h) {
    for (int i = 0; i < m; i++) {
        const float *gi_i = gi + (long)i * 3 * hd, *gh_i = gh + (long)i * 3 * hd;
        const float *hp_i = h_prev + (long)i * hd;
        float *g_i = gates + (long)i * 3 * hd, *ghn_i = gh_n + (long)i * hd, *h_i = h + (long)i * hd;
#pragma omp simd
        for (int j = 0; j < hd; j++) {
            float r = sigmoid(gi_i[j] + gh_i[j]);
            float z = sigmoid(gi_i[hd + j] + gh_i[hd + j]);
            float hn = gh_i[2 * hd + j];
            float n = 2.0f * sigmoid(2.0f * (gi_i[2 * hd + j] + r * hn)) - 1.0f;
            g_i[j] = r;
            g_i[hd + j] = z;
            g_i[2 * hd + j] = n;
            ghn_i[j] = hn;
            h_i[j] = n + z * (hp_i[j] - n);
        }
    }
}

/* Backward of one step. dh [M, H] holds dL/dh_t from later steps; dout [M, H] is dL/dh_t from
 * this step's output. Writes dL/dgi and dL/dgh [M, 3H] and overwrites dh with the direct part
 * of dL/dh_{t-1}, (dh + dout) * z; the caller adds dL/dgh W_hh. */
void gru_backward_step(int m, int hd, const float *gates, const float *gh_n, const float *h_prev,
                       const float *dout, float *dh, float *dgi, float *dgh) {
    for (int i = 0; i < m; i++) {
        const float *g_i = gates + (long)i * 3 * hd, *ghn_i = gh_n + (long)i * hd;
        const float *hp_i = h_prev + (long)i * hd, *do_i = dout + (long)i * hd;
        float *dh_i = dh + (long)i * hd, *dgi_i = dgi + (long)i * 3 * hd, *dgh_i = dgh + (long)i * 3 * hd;
#pragma omp simd
        for (int j = 0; j < hd; j++) {
            float r = g_i[j], z = g_i[hd + j], n = g_i[2 * hd + j];
            float d = dh_i[j] + do_i[j];
            float dn = d * (1.0f - z) * (1.0f - n * n);
            float dz = d * (hp_i[j] - n) * z * (1.0f - z);
            float dr = dn * ghn_i[j] * r * (1.0f - r);
            dgi_i[j] = dr;
            dgi_i[hd + j] = dz;
            dgi_i[2 * hd + j] = dn;
            dgh_i[j] = dr;
            dgh_i[hd + j] = dz;
            dgh_i[2 * hd + j] = dn * r;
            dh_i[j] = d * z;
        }
    }
}
