/* TEMPORARY, not committed: plain SGD until the optimizer module lands. */
#include "internal.h"
bp_status bp__optimizer_validate_for(bp_optimizer *opt, const bp_net *net) { (void)opt; (void)net; return BP_OK; }
bp_status bp__optimizer_step_trusted(bp_optimizer *opt, bp_net *net) {
    (void)opt; for (size_t i = 0; i < net->nparams; i++) net->params[i] -= 0.1f * net->grads[i]; return BP_OK; }
