/* char_lm.c -- a character-level language model (LSTM) on the text of Debian's fortunes.
 *
 *   char_lm [--epochs E] [--steps S] [--seed N] [--threads N] [--eval W] [--sample C]
 *           [--temperature X] [--data DIR]
 *
 * Data: the *.u8 files of the Debian package `fortunes` (/usr/share/games/fortunes, about
 * 2.6 MB of UTF-8 text), sorted by name and concatenated; the last 10% is held out. The
 * vocabulary is the set of byte values present in the text (114 of them): each byte becomes
 * its rank among them, a token id stored as a float.
 *
 * Model (the floors' configuration of issue #14; bench/charlm_torch.py trains the same with
 * PyTorch): a sequence net of T = 64 steps of one token id, an embedding of 64, one LSTM
 * layer of 256 returning every step, and a dense softmax layer over the vocabulary applied
 * per step. Each row predicts the next byte at every step: inputs text[s .. s+63], targets
 * text[s+1 .. s+64] (class ids, sparse softmax cross-entropy, the mean over all 32 x 64
 * steps). Each update draws 32 windows at random positions of the training text; Adam,
 * learning rate 2e-3, the gradients clipped to a global L2 norm of 5 (BP_NET_CLIP_NORM).
 *
 * --epochs E --steps S: E rounds of S updates (default 1 x 3000); after each round the
 * held-out text is scored: cut into consecutive windows of 65 bytes (64 inputs, the 64 next
 * bytes as targets), each run from a zero state like the training windows, the mean
 * cross-entropy over every predicted byte in bits per character (log2 of the perplexity;
 * 8 for a model that knows nothing, log2(114) = 6.83 for a uniform guess). --eval W scores
 * only the first W windows (0, the default: all of them, about 4000).
 *
 * Then the model writes --sample C characters (default 400): the first 64 held-out bytes as
 * the prompt, each next byte drawn from the softmax of the last step with temperature
 * --temperature (default 0.8: p_i^(1/0.8), renormalised; lower is more conservative), the
 * window sliding on by one byte, with the example's own seeded generator.
 *
 * Last line: result: heldout_bpc=B updates=N tokens_per_s=R train_seconds=S
 * Exits 2 if the fortunes package is not installed. docs/sequences.md walks through it. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <backprop.h>

#define DEFAULT_DIR "/usr/share/games/fortunes"
#define T           64  /* steps per window */
#define BATCH       32  /* windows per update */
#define EMBED       64  /* embedding dimension */
#define HIDDEN      256 /* LSTM units */
#define EVAL_CHUNK  512 /* held-out windows per evaluation call */
#define LN2         0.69314718055994530942

static void check(bp_status s, const bp_net *net, const char *what)
{
    if (s == BP_OK) return;
    fprintf(stderr, "char_lm: %s: %s (%s)\n", what, net ? bp_net_last_error(net) : bp_last_error(),
            bp_status_string(s));
    exit(1);
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes != 0 ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "char_lm: out of memory\n");
        exit(1);
    }
    return p;
}

/* The example's random numbers (window positions, sampling): xorshift64*, seeded. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static double rng_uniform(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Concatenates DIR/ *.u8 sorted by name (strcmp, like Python's sorted()); exits 2 when there
 * are none. Returns the text, its length in *len. */
static unsigned char *load_text(const char *dir, size_t *len, size_t *files)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        const size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".u8") != 0) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                fprintf(stderr, "char_lm: out of memory\n");
                exit(1);
            }
            names = grown;
        }
        names[count] = xmalloc(n + 1);
        memcpy(names[count++], e->d_name, n + 1);
    }
    if (d != NULL) closedir(d);
    if (count == 0) {
        fprintf(stderr,
                "char_lm: no *.u8 files in %s: install the Debian package fortunes "
                "(apt-get install fortunes)\n",
                dir);
        exit(2);
    }
    qsort(names, count, sizeof *names, by_name);
    unsigned char *text = NULL;
    size_t used = 0, room = 0;
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            fprintf(stderr, "char_lm: cannot open %s\n", path);
            exit(1);
        }
        for (;;) {
            if (room - used < 65536) {
                room = room ? 2 * room : 1 << 22;
                unsigned char *grown = realloc(text, room);
                if (grown == NULL) {
                    fprintf(stderr, "char_lm: out of memory\n");
                    exit(1);
                }
                text = grown;
            }
            const size_t got = fread(text + used, 1, room - used, f);
            used += got;
            if (got == 0) break;
        }
        if (ferror(f)) {
            fprintf(stderr, "char_lm: cannot read %s\n", path);
            exit(1);
        }
        fclose(f);
        free(names[i]);
    }
    free(names);
    *len = used;
    *files = count;
    return text;
}

/* Fills one batch: BATCH windows at random offsets of ids[0 .. n), inputs x[BATCH x T] and
 * next-token targets y[BATCH x T]. */
static void draw_batch(const float *ids, size_t n, float *x, float *y)
{
    for (size_t r = 0; r < BATCH; r++) {
        const size_t s = (size_t)(rng_uniform() * (double)(n - T));
        memcpy(x + r * T, ids + s, T * sizeof(float));
        memcpy(y + r * T, ids + s + 1, T * sizeof(float));
    }
}

/* Held-out bits per character over the first `windows` windows of T + 1 bytes. */
static double heldout_bpc(bp_net *net, const float *ids, size_t windows)
{
    double nats = 0;
    float *x = xmalloc(EVAL_CHUNK * T * sizeof(float)),
          *y = xmalloc(EVAL_CHUNK * T * sizeof(float));
    for (size_t w0 = 0; w0 < windows; w0 += EVAL_CHUNK) {
        const size_t k = windows - w0 < EVAL_CHUNK ? windows - w0 : EVAL_CHUNK;
        for (size_t r = 0; r < k; r++) {
            memcpy(x + r * T, ids + (w0 + r) * T, T * sizeof(float));
            memcpy(y + r * T, ids + (w0 + r) * T + 1, T * sizeof(float));
        }
        bp_dataset *ds;
        check(bp_dataset_create(&ds, x, y, k, T, T), NULL, "held-out windows");
        double m[1];
        check(bp_net_evaluate(net, BP_LOSS_SPARSE_SOFTMAX_CE, ds, m, 1), net, "evaluate");
        nats += m[BP_METRIC_LOSS] * (double)k; /* the mean over k * T steps */
        bp_dataset_free(ds);
    }
    free(x);
    free(y);
    return nats / (double)windows / LN2;
}

/* Writes `count` sampled bytes after a prompt of T bytes (token ids `prompt`). */
static void sample_text(bp_net *net, const unsigned char *bytes, const float *prompt, size_t vocab,
                        size_t count, double temperature)
{
    float window[T], *probs = xmalloc(T * vocab * sizeof(float));
    double *w = xmalloc(vocab * sizeof(double));
    memcpy(window, prompt, sizeof window);
    for (size_t i = 0; i < T; i++)
        putchar(bytes[(size_t)prompt[i]]);
    fputs("<<<", stdout); /* the prompt ends here */
    for (size_t c = 0; c < count; c++) {
        check(bp_net_predict(net, window, 1, probs, T * vocab), net, "predict");
        const float *p = probs + (T - 1) * vocab; /* the distribution of the next byte */
        double sum = 0;
        for (size_t v = 0; v < vocab; v++)
            sum += w[v] = pow((double)p[v] + 1e-30, 1.0 / temperature);
        double u = rng_uniform() * sum;
        size_t pick = 0;
        while (pick + 1 < vocab && (u -= w[pick]) > 0)
            pick++;
        putchar(bytes[pick]);
        memmove(window, window + 1, (T - 1) * sizeof(float));
        window[T - 1] = (float)pick;
    }
    puts(">>>");
    free(probs);
    free(w);
}

int main(int argc, char **argv)
{
    unsigned long epochs = 1, steps = 3000, seed = 1, threads = 0, eval = 0, sample = 400;
    double temperature = 0.8;
    const char *dir = DEFAULT_DIR;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val != NULL && strcmp(opt, "--epochs") == 0)
            epochs = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--steps") == 0)
            steps = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--seed") == 0)
            seed = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--threads") == 0)
            threads = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--eval") == 0)
            eval = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--sample") == 0)
            sample = strtoul(val, NULL, 10);
        else if (val != NULL && strcmp(opt, "--temperature") == 0)
            temperature = strtod(val, NULL);
        else if (val != NULL && strcmp(opt, "--data") == 0)
            dir = val;
        else {
            fprintf(stderr, "usage: char_lm [--epochs E] [--steps S] [--seed N] [--threads N] "
                            "[--eval W] [--sample C] [--temperature X] [--data DIR]\n");
            return 1;
        }
    }
    if (epochs < 1 || steps < 1 || !(temperature > 0.01 && temperature <= 10)) {
        fprintf(stderr, "char_lm: --epochs and --steps must be >= 1, --temperature in "
                        "(0.01, 10]\n");
        return 1;
    }
    if (threads > 0) check(bp_set_num_threads((int)threads), NULL, "--threads");
    rng_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0xD1B54A32D192ED03ULL);
    if (rng_state == 0) rng_state = 1;

    /* 1. The text and its byte vocabulary. */
    size_t len, files;
    unsigned char *text = load_text(dir, &len, &files);
    size_t rank[256] = {0}, vocab = 0;
    unsigned char bytes[256]; /* id -> byte */
    int present[256] = {0};
    for (size_t i = 0; i < len; i++)
        present[text[i]] = 1;
    for (int b = 0; b < 256; b++)
        if (present[b]) bytes[vocab] = (unsigned char)b, rank[b] = vocab++;
    float *ids = xmalloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++)
        ids[i] = (float)rank[text[i]];
    const size_t train_len = len - len / 10, held_len = len - train_len;
    const float *held = ids + train_len;
    size_t windows = (held_len - 1) / T;
    if (eval > 0 && eval < windows) windows = eval;
    if (train_len < 2 * T || windows == 0) {
        fprintf(stderr, "char_lm: the text in %s is too short (%zu bytes)\n", dir, len);
        return 1;
    }
    printf("fortunes: %zu files, %zu bytes: %zu for training, %zu held out (%zu windows "
           "scored); vocabulary %zu bytes\n",
           files, len, train_len, held_len, windows, vocab);

    /* 2. The model: token ids -> embedding -> LSTM (every step) -> per-step softmax. */
    bp_net *net;
    check(bp_net_create_sequence(&net, T, 1, seed), NULL, "network");
    check(bp_net_add_embedding(net, vocab, EMBED), net, "embedding");
    check(bp_net_add_lstm(net, HIDDEN, 0), net, "lstm");
    check(bp_net_add_dense(net, vocab, BP_ACT_SOFTMAX), net, "softmax");
    check(bp_net_set(net, BP_NET_CLIP_NORM, 5.0), net, "clipping");
    bp_optimizer *opt;
    check(bp_optimizer_create(&opt, BP_OPTIMIZER_ADAM), NULL, "optimizer");
    check(bp_optimizer_set(opt, BP_OPT_LEARNING_RATE, 2e-3), NULL, "learning rate");
    printf("model: embedding %d, LSTM %d, dense %zu (softmax per step); %zu parameters; "
           "T = %d, batch %d, Adam 2e-3, clip 5; %d BLAS thread(s)\n",
           EMBED, HIDDEN, vocab, bp_net_param_count(net), T, BATCH, bp_get_num_threads());
    printf("held-out before training: %.4f bits/char\n", heldout_bpc(net, held, windows));

    /* 3. Training: random windows; progress every `every` updates. */
    float *x = xmalloc(BATCH * T * sizeof(float)), *y = xmalloc(BATCH * T * sizeof(float));
    const size_t every = steps >= 1000 ? 100 : steps >= 10 ? steps / 10 : 1;
    double train_s = 0, interval = 0, bpc = 0; /* interval: loss summed since the last line */
    size_t timed = 0; /* updates inside train_s (the very first one is a warm-up) */
    for (unsigned long e = 0; e < epochs; e++) {
        double t0 = now_s();
        interval = 0;
        for (unsigned long s = 0; s < steps; s++) {
            draw_batch(ids, train_len, x, y);
            float loss;
            check(bp_net_train_step(net, opt, BP_LOSS_SPARSE_SOFTMAX_CE, x, y, BATCH, &loss), net,
                  "training");
            interval += (double)loss;
            if (e == 0 && s == 0) /* the first update plans the buffers: not timed */
                t0 = now_s();
            else
                timed++;
            if ((s + 1) % every == 0) {
                const double el = train_s + now_s() - t0, mean = interval / (double)every;
                printf(
                    "epoch %lu update %5lu: training loss %.4f (%.3f bits/char), %.0f tokens/s\n",
                    e + 1, s + 1, mean, mean / LN2,
                    timed > 0 ? (double)timed * BATCH * T / el : 0.0);
                fflush(stdout);
                interval = 0;
            }
        }
        train_s += now_s() - t0;
        bpc = heldout_bpc(net, held, windows);
        printf("epoch %lu: held-out %.4f bits/char (%zu windows)\n", e + 1, bpc, windows);
    }
    const double tokens_per_s = timed > 0 ? (double)timed * BATCH * T / train_s : 0;

    /* 4. Sampled text after a held-out prompt. */
    if (sample > 0) {
        printf("\nsample (temperature %.2f; the prompt is the held-out text up to '<<<'):\n",
               temperature);
        sample_text(net, bytes, held, vocab, sample, temperature);
    }
    printf("\n%lu updates of %d tokens in %.1f s (%.0f tokens/s); held-out %.4f bits/char\n",
           epochs * steps, BATCH * T, train_s, tokens_per_s, bpc);
    printf("result: heldout_bpc=%.4f updates=%lu tokens_per_s=%.0f train_seconds=%.1f\n", bpc,
           epochs * steps, tokens_per_s, train_s);

    free(x);
    free(y);
    free(ids);
    free(text);
    bp_optimizer_free(opt);
    bp_net_free(net);
    return 0;
}
