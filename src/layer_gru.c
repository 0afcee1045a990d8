/* layer_gru.c -- gated recurrent unit (Cho et al. 2014), PyTorch's nn.GRU:
 *
 *   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     gates in this order: r, z, n
 *   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh   (W_in x + b_in + r (W_hn h + b_hn))  (the reset gate after the hidden matmul)
 *   h' = (1 - z) n + z h
 *
 * Backward of one step from dh': dn = dh' (1 - z), dz = dh' (h - n), the direct part of dh
 * is dh' z; with a_n = dn (1 - n^2): the input pre-activations get (dr', dz', a_n), the hidden
 * ones (dr', dz', a_n r), where dr' = a_n (W_hn h + b_hn) r (1 - r), dz' = dz z (1 - z). So
 * the n gate's hidden part (kept per step in aux) makes dZh differ from dZ (recurrent.c). */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "recurrent.h"

#include "act_math.h"

/* Gates fused, one pointer per gate block (see layer_lstm.c). */
static BP__ALWAYS_INLINE void gru_row(size_t H, float *restrict ar, float *restrict az,
                                      float *restrict an, const float *restrict hr,
                                      const float *restrict hz, const float *restrict hnn,
                                      const float *restrict bi, const float *restrict bh,
                                      const float *restrict hp, float *restrict hn,
                                      float *restrict ho)
{
    for (size_t j = 0; j < H; j++) {
        const float rg = bp__sigmoidf((ar[j] + bi[j]) + (hr[j] + bh[j]));
        const float zg = bp__sigmoidf((az[j] + bi[H + j]) + (hz[j] + bh[H + j]));
        const float hv = hnn[j] + bh[2 * H + j];
        const float ng = bp__tanhf((an[j] + bi[2 * H + j]) + rg * hv);
        ar[j] = rg;
        az[j] = zg;
        an[j] = ng;
        hn[j] = hv;
        ho[j] = (1.0f - zg) * ng + zg * hp[j];
    }
}

BP__KERNEL
static void gru_step(const bp__rstep *s)
{
    const size_t H = s->H;
    for (size_t r = 0; r < s->n; r++) {
        float *a = s->a + r * s->sa;
        const float *hh = s->hh + r * 3 * H;
        gru_row(H, a, a + H, a + 2 * H, hh, hh + H, hh + 2 * H, s->b_ih, s->b_hh,
                s->h_prev + r * s->sh, s->aux + r * s->sx, s->h_out + r * s->sho);
    }
}

static BP__ALWAYS_INLINE void
gru_row_back(size_t H, const float *restrict ar, const float *restrict az, const float *restrict an,
             const float *restrict hp, const float *restrict hn, const float *restrict dh,
             float *restrict dr, float *restrict dzz, float *restrict dn, float *restrict dhr,
             float *restrict dhz, float *restrict dhn, float *restrict dp)
{
    for (size_t j = 0; j < H; j++) {
        const float rg = ar[j], zg = az[j], ng = an[j], d = dh[j];
        const float a_n = d * (1.0f - zg) * (1.0f - ng * ng);
        const float a_r = a_n * hn[j] * (rg * (1.0f - rg));
        const float a_z = d * (hp[j] - ng) * (zg * (1.0f - zg));
        dr[j] = a_r;
        dzz[j] = a_z;
        dn[j] = a_n;
        dhr[j] = a_r;
        dhz[j] = a_z;
        dhn[j] = a_n * rg;
        dp[j] = d * zg;
    }
}

BP__KERNEL
static int gru_step_back(const bp__rstep_back *s)
{
    const size_t H = s->H;
    for (size_t r = 0; r < s->n; r++) {
        const float *a = s->a + r * s->sa;
        float *dz = s->dz + r * s->sz, *dzh = s->dzh + r * s->sz;
        gru_row_back(H, a, a + H, a + 2 * H, s->h_prev + r * s->sh, s->aux + r * s->sx,
                     s->dh + r * H, dz, dz + H, dz + 2 * H, dzh, dzh + H, dzh + 2 * H,
                     s->dh_prev + r * H);
    }
    return 1;
}

static const bp__cell gru_cell = {
    .vt = &bp__gru_vtable,
    .fn = "bp_net_add_gru",
    .gates = 3,
    .carries = 1,
    .aux = 1,
    .split_dzh = 1,
    .forward = gru_step,
    .backward = gru_step_back,
};

bp_status bp_net_add_gru(bp_net *net, size_t hidden, int flags)
{
    return bp__rec_add(net, &gru_cell, hidden, BP_ACT_TANH, flags);
}

static bp_status gru_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    return bp__rec_construct(net, &gru_cell, hp, count, expect);
}

const bp__layer_vtable bp__gru_vtable = BP__REC_VTABLE(BP_LAYER_GRU, "gru", gru_construct);
