/* server_params.c - a validated request (either wire format) and the
 * model's configured defaults -> the engine's generation parameters: the
 * model's sampling (or the engine defaults with a random seed), overridden
 * by each field the request gave; max_tokens from the request, else the
 * model's default_max_tokens capped by the server limit, else the server's
 * default. */
#include "server/server_int.h"
#include "server/server_req.h"

void srv_gen_params(const struct server_request *r, const struct server_model_spec *sp,
                    const struct server_limits *lim, const char *prompt, struct engine_gen_params *gp)
{
    engine_sampling_default(&gp->sampling);
    if (sp->has_sampling)
        gp->sampling = sp->sampling;
    else {
        char hex[17];
        trace_random_hex(hex, sizeof hex, 8);
        uint64_t seed = 0;
        for (int i = 0; hex[i]; i++)
            seed = seed * 16 + (uint64_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
        gp->sampling.seed = seed;
    }
    if (r->has_temperature)
        gp->sampling.temperature = (float)r->temperature;
    if (r->has_top_p)
        gp->sampling.top_p = (float)r->top_p;
    if (r->has_top_k)
        gp->sampling.top_k = r->top_k;
    if (r->has_min_p)
        gp->sampling.min_p = (float)r->min_p;
    if (r->has_repeat_penalty)
        gp->sampling.repeat_penalty = (float)r->repeat_penalty;
    if (r->has_seed)
        gp->sampling.seed = r->seed;
    gp->sampling.presence_penalty = (float)r->presence_penalty;
    gp->sampling.frequency_penalty = (float)r->frequency_penalty;
    gp->sampling.logit_bias = r->logit_bias;
    gp->sampling.n_logit_bias = r->n_logit_bias;
    gp->prompt = prompt;
    gp->add_bos = true;
    gp->parse_special = r->chat;
    gp->max_tokens = r->max_tokens ? r->max_tokens
                     : sp->default_max_tokens ? SP_MIN(sp->default_max_tokens, lim->max_tokens)
                                              : lim->default_max_tokens;
    gp->stop = (const char *const *)r->stop;
    gp->n_stop = r->n_stop;
    gp->want_logprobs = r->logprobs;
    gp->n_top_logprobs = r->logprobs ? r->top_logprobs : 0;
    gp->grammar = r->grammar;
}
