/* layer_rnn.c -- the simple (Elman) recurrent layer, PyTorch's nn.RNN:
 *
 *   h' = f(W_ih x + b_ih + W_hh h + b_hh),   f = tanh or ReLU
 *
 * Backward of one step: dz = dh' f'(z), from h' itself (1 - h'^2, or h' > 0); all of dL/dh
 * comes through W_hh (recurrent.c). */
#include "util.h"
#include "layer.h"
#include "layer_kinds.h"
#include "net.h"
#include "recurrent.h"

#include "act_math.h"

/* One kernel per activation (a constant in the loop: no switch per element). */
static BP__ALWAYS_INLINE void rnn_step_act(const bp__rstep *s, int relu)
{
    const size_t H = s->H;
    const float *restrict bi = s->b_ih, *restrict bh = s->b_hh;
    for (size_t r = 0; r < s->n; r++) {
        float *restrict a = s->a + r * s->sa;
        const float *restrict hh = s->hh + r * H;
        float *restrict ho = s->h_out + r * s->sho;
        for (size_t j = 0; j < H; j++) {
            const float v = (a[j] + bi[j]) + (hh[j] + bh[j]);
            const float h = relu ? bp__select_f(v > 0.0f, v, 0.0f) : bp__tanhf(v);
            a[j] = h;
            ho[j] = h;
        }
    }
}

BP__KERNEL
static void rnn_step(const bp__rstep *s)
{
    if (s->l->activation == BP_ACT_RELU)
        rnn_step_act(s, 1);
    else
        rnn_step_act(s, 0);
}

BP__KERNEL
static int rnn_step_back(const bp__rstep_back *s)
{
    const size_t H = s->H;
    const int relu = s->l->activation == BP_ACT_RELU;
    for (size_t r = 0; r < s->n; r++) {
        const float *restrict a = s->a + r * s->sa;
        const float *restrict dh = s->dh + r * H;
        float *restrict dz = s->dz + r * s->sz;
        if (relu)
            for (size_t j = 0; j < H; j++)
                dz[j] = bp__select_f(a[j] > 0.0f, dh[j], 0.0f);
        else
            for (size_t j = 0; j < H; j++)
                dz[j] = dh[j] * (1.0f - a[j] * a[j]);
    }
    return 0;
}

static const bp__cell rnn_cell = {
    .vt = &bp__rnn_vtable,
    .fn = "bp_net_add_rnn",
    .gates = 1,
    .carries = 1,
    .aux = 0,
    .split_dzh = 0,
    .forward = rnn_step,
    .backward = rnn_step_back,
};

bp_status bp_net_add_rnn(bp_net *net, size_t hidden, int activation, int flags)
{
    BP__NET_CHECK(net, "bp_net_add_rnn");
    if (activation != BP_ACT_TANH && activation != BP_ACT_RELU)
        return bp__fail(net->err, BP_ERR_INVALID_ARG,
                        "bp_net_add_rnn: activation %d is neither BP_ACT_TANH nor BP_ACT_RELU",
                        activation);
    return bp__rec_add(net, &rnn_cell, hidden, activation, flags);
}

static bp_status rnn_construct(bp_net *net, const bp__hyper *hp, size_t count, size_t expect)
{
    return bp__rec_construct(net, &rnn_cell, hp, count, expect);
}

const bp__layer_vtable bp__rnn_vtable = BP__REC_VTABLE(BP_LAYER_RNN, "rnn", rnn_construct);
