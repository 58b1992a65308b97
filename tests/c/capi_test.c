/*
 * C tests of librmx, compiled and run by tests/capi.rs (which also runs them under
 * valgrind). Modes:
 *
 *   capi_test api MODEL OTHER_MODEL WORKDIR
 *       every function and every error path. MODEL is a small model (the tiny fixture);
 *       OTHER_MODEL a different one (an index built with MODEL must not open with it);
 *       $RMX_MODEL must name MODEL (NULL model_dir is tested). Scratch files go to WORKDIR.
 *   capi_test query MODEL INDEX K INSTANCES single|batch|both
 *       answers each instance (one rmx_query each, or one rmx_query_batch for all, or the
 *       batch then each) and prints "line<TAB>id<TAB>name<TAB>score<TAB>context<TAB>head<TAB>tail" per match
 *       (floats with 9 significant digits: exact f32). MODEL "-" is NULL (default model).
 *   capi_test status MODEL INDEX
 *       opens INDEX with MODEL and, if that succeeds, asks one query (rmx_query and
 *       rmx_query_batch) of it; prints "open|query|batch<TAB>status<TAB>last error" for each
 *       call made (tests/capi.rs checks which status each damaged input reaches).
 *   capi_test threads MODEL INDEX K INSTANCES THREADS ROUNDS
 *       THREADS pthreads query one engine at once, ROUNDS passes each (rmx_query and
 *       rmx_query_batch); every answer must equal the single-threaded one bit for bit.
 *   capi_test soak MODEL INDEX K INSTANCES THREADS SECONDS
 *       as threads, for SECONDS of passes instead of a number of rounds, printing the
 *       process's resident set size and the calls made so far every 10 s (JSON lines) and a
 *       summary; a benchmark (scripts/soak.sh), not a test.
 *
 * INSTANCES: one instance per line, "head_start head_end tail_start tail_end<TAB>text"
 * (byte offsets). Exit status 0 when every check passed.
 */
#include "rmx.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n  last error: %s\n", rmx_last_error());                  \
        }                                                                                \
    } while (0)

/* The call returns `want`; on failure the last error mentions `needle` (NULL: anything
 * non-empty). */
#define EXPECT(call, want, needle)                                                       \
    do {                                                                                 \
        rmx_status got_ = (call);                                                        \
        CHECK(got_ == (want), "%s returned %d (%s), expected %d (%s)", #call, (int)got_, \
              rmx_status_str(got_), (int)(want), rmx_status_str(want));                  \
        if (got_ != RMX_OK && got_ == (want)) {                                          \
            const char *needle_ = (needle);                                              \
            CHECK(rmx_last_error()[0] != '\0', "%s: empty last error", #call);           \
            CHECK(needle_ == NULL || strstr(rmx_last_error(), needle_) != NULL,          \
                  "%s: last error lacks \"%s\"", #call, needle_ ? needle_ : "");         \
        }                                                                                \
    } while (0)

static void die(const char *what) {
    fprintf(stderr, "capi_test: %s: %s\n", what, strerror(errno));
    exit(2);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) die("malloc");
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) die(path);
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) die(path);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const unsigned char *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len || fclose(f) != 0) die(path);
}

static uint64_t get_u64(const unsigned char *b, size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[at + (size_t)i];
    return v;
}

/* A copy of index SRC in directory DIR/NAME, with `edit` applied to its data file. */
enum edit { FLIP_HEADER, FLIP_META, FLIP_VECTORS, TRUNCATE, NEWER_VERSION, NOT_AN_INDEX };

static char *damaged_copy(const char *workdir, const char *src, const char *name, enum edit edit) {
    char *dir = join(workdir, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir);
    char *from = join(src, "index.rmx"), *to = join(dir, "index.rmx");
    size_t len;
    unsigned char *b = read_file(from, &len);
    /* Section table: 7 entries of 32 bytes at offset 128: {kind, reserved, offset, len, sum}. */
    switch (edit) {
    case FLIP_HEADER: b[24] ^= 0x01; break;                         /* relation count */
    case FLIP_META: b[get_u64(b, 128 + 2 * 32 + 8)] ^= 0x20; break; /* first byte of the heap */
    case FLIP_VECTORS: b[get_u64(b, 128 + 8) + 5] ^= 0x40; break;   /* inside the first vector */
    case TRUNCATE: len -= 100; break;
    case NEWER_VERSION: b[8] = 99; break;
    case NOT_AN_INDEX: memcpy(b, "NOTANIDX", 8); break;
    }
    write_bytes(to, b, len);
    free(b);
    free(from);
    free(to);
    return dir;
}

/* ---------------------------------------------------------------- instances */

typedef struct {
    size_t n;
    rmx_instance *items;
    char **texts;
} instances;

static instances read_instances(const char *path) {
    instances in = {0, NULL, NULL};
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        rmx_instance x;
        if (sscanf(line, "%zu %zu %zu %zu", &x.head_start, &x.head_end, &x.tail_start, &x.tail_end) != 4) {
            fprintf(stderr, "capi_test: bad instance line: %s\n", line);
            exit(2);
        }
        in.items = realloc(in.items, (in.n + 1) * sizeof *in.items);
        in.texts = realloc(in.texts, (in.n + 1) * sizeof *in.texts);
        if (!in.items || !in.texts) die("realloc");
        in.texts[in.n] = strdup(tab + 1);
        x.text = in.texts[in.n];
        in.items[in.n++] = x;
    }
    fclose(f);
    return in;
}

static void free_instances(instances *in) {
    for (size_t i = 0; i < in->n; i++) free(in->texts[i]);
    free(in->texts);
    free(in->items);
}

static void print_matches(size_t line, const rmx_match *m, size_t n) {
    for (size_t j = 0; j < n; j++)
        printf("%zu\t%s\t%s\t%.9g\t%.9g\t%.9g\t%.9g\n", line, m[j].id, m[j].name, m[j].score, m[j].context, m[j].head,
               m[j].tail);
}

static int open_engine(const char *model, const char *index, rmx_engine **e) {
    rmx_status s = rmx_engine_open(strcmp(model, "-") == 0 ? NULL : model, index, e);
    if (s != RMX_OK) {
        fprintf(stderr, "capi_test: rmx_engine_open: %s: %s\n", rmx_status_str(s), rmx_last_error());
        return 0;
    }
    return 1;
}

static int mode_query(const char *model, const char *index, size_t k, const char *path, const char *how) {
    rmx_engine *e = NULL;
    if (!open_engine(model, index, &e)) return 2;
    instances in = read_instances(path);
    rmx_match *out = calloc(in.n * k + 1, sizeof *out);
    size_t *n_out = calloc(in.n + 1, sizeof *n_out);
    int rc = 0;
    int single = strcmp(how, "single") == 0 || strcmp(how, "both") == 0;
    int batch = strcmp(how, "batch") == 0 || strcmp(how, "both") == 0;
    if (batch) {
        rmx_status s = rmx_query_batch(e, in.items, in.n, k, out, n_out);
        if (s != RMX_OK) {
            fprintf(stderr, "capi_test: rmx_query_batch: %s: %s\n", rmx_status_str(s), rmx_last_error());
            rc = 1;
        } else {
            for (size_t i = 0; i < in.n; i++) print_matches(i + 1, out + i * k, n_out[i]);
        }
    }
    if (single) {
        for (size_t i = 0; i < in.n && rc == 0; i++) {
            rmx_status s = rmx_query(e, &in.items[i], k, out, n_out);
            if (s != RMX_OK) {
                fprintf(stderr, "capi_test: rmx_query %zu: %s: %s\n", i, rmx_status_str(s), rmx_last_error());
                rc = 1;
            } else {
                print_matches(i + 1, out, n_out[0]);
            }
        }
    }
    free(out);
    free(n_out);
    free_instances(&in);
    rmx_engine_free(e);
    return rc;
}

/* ---------------------------------------------------------------- threads */

typedef struct {
    const rmx_engine *engine;
    const instances *in;
    size_t k, rounds;
    double deadline;                 /* monotonic seconds: run until then (0: `rounds` passes) */
    size_t calls;                    /* queries and batches made (atomic) */
    const rmx_match *expected;       /* in.n * k: rmx_query of each instance */
    const size_t *expected_n;        /* in.n */
    const rmx_match *expected_batch; /* in.n * k: rmx_query_batch of all */
    const size_t *expected_batch_n;  /* in.n */
    size_t mismatches, errors;
} worker;

static int same(const rmx_match *a, const rmx_match *b) {
    /* Bit-for-bit: the very same engine-owned strings and the same floats. */
    return a->id == b->id && a->name == b->name && memcmp(&a->score, &b->score, 4 * sizeof(float)) == 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *work(void *arg) {
    worker *w = arg;
    const instances *in = w->in;
    rmx_match *out = calloc(in->n * w->k, sizeof *out);
    size_t *n_out = calloc(in->n, sizeof *n_out);
    for (size_t r = 0; w->deadline > 0 ? now_s() < w->deadline : r < w->rounds; r++) {
        __atomic_fetch_add(&w->calls, in->n + 1, __ATOMIC_RELAXED);
        for (size_t i = 0; i < in->n; i++) {
            if (rmx_query(w->engine, &in->items[i], w->k, out, n_out) != RMX_OK) {
                w->errors++;
                continue;
            }
            if (n_out[0] != w->expected_n[i]) w->mismatches++;
            for (size_t j = 0; j < n_out[0] && j < w->expected_n[i]; j++)
                if (!same(&out[j], &w->expected[i * w->k + j])) w->mismatches++;
        }
        if (rmx_query_batch(w->engine, in->items, in->n, w->k, out, n_out) != RMX_OK) {
            w->errors++;
            continue;
        }
        for (size_t i = 0; i < in->n; i++) {
            if (n_out[i] != w->expected_batch_n[i]) w->mismatches++;
            for (size_t j = 0; j < n_out[i] && j < w->expected_batch_n[i]; j++)
                if (!same(&out[i * w->k + j], &w->expected_batch[i * w->k + j])) w->mismatches++;
        }
    }
    free(out);
    free(n_out);
    return NULL;
}

/* Runs `threads` workers over `in` and checks their answers against single-threaded ones. */
/* The resident set size of this process in KiB (0 if unknown). */
static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* `seconds` > 0: run for that long instead of `rounds` passes, reporting RSS every 10 s. */
static void check_threads(const rmx_engine *e, const instances *in, size_t k, size_t threads, size_t rounds, double seconds) {
    rmx_match *expected = calloc(in->n * k, sizeof *expected);
    size_t *expected_n = calloc(in->n, sizeof *expected_n);
    rmx_match *expected_batch = calloc(in->n * k, sizeof *expected_batch);
    size_t *expected_batch_n = calloc(in->n, sizeof *expected_batch_n);
    for (size_t i = 0; i < in->n; i++)
        EXPECT(rmx_query(e, &in->items[i], k, expected + i * k, expected_n + i), RMX_OK, NULL);
    EXPECT(rmx_query_batch(e, in->items, in->n, k, expected_batch, expected_batch_n), RMX_OK, NULL);
    worker *ws = calloc(threads, sizeof *ws);
    pthread_t *ids = calloc(threads, sizeof *ids);
    double start = now_s();
    for (size_t t = 0; t < threads; t++) {
        ws[t] = (worker){e, in, k, rounds, seconds > 0 ? start + seconds : 0, 0, expected, expected_n, expected_batch, expected_batch_n, 0, 0};
        CHECK(pthread_create(&ids[t], NULL, work, &ws[t]) == 0, "pthread_create %zu", t);
    }
    long rss_start = rss_kb(), rss_max = rss_start;
    for (double next = start + 10; seconds > 0 && next <= start + seconds + 1e-9; next += 10) {
        while (now_s() < next) usleep(100000);
        size_t calls = 0;
        for (size_t t = 0; t < threads; t++) calls += __atomic_load_n(&ws[t].calls, __ATOMIC_RELAXED);
        long rss = rss_kb();
        if (rss > rss_max) rss_max = rss;
        printf("{\"t\": %.0f, \"rss_kb\": %ld, \"calls\": %zu}\n", now_s() - start, rss, calls);
        fflush(stdout);
    }
    size_t mismatches = 0, errors = 0;
    for (size_t t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        mismatches += ws[t].mismatches;
        errors += ws[t].errors;
    }
    CHECK(errors == 0, "%zu queries failed in threads", errors);
    CHECK(mismatches == 0, "%zu answers differ from the single-threaded ones", mismatches);
    if (seconds > 0) {
        size_t calls = 0;
        for (size_t t = 0; t < threads; t++) calls += ws[t].calls;
        printf("{\"soak_s\": %.0f, \"threads\": %zu, \"calls\": %zu, \"errors\": %zu, \"mismatches\": %zu, \"rss_start_kb\": %ld, "
               "\"rss_end_kb\": %ld, \"rss_max_kb\": %ld}\n",
               now_s() - start, threads, calls, errors, mismatches, rss_start, rss_kb(), rss_max);
    }
    if (seconds <= 0)
        printf("threads: %zu threads x %zu rounds x (%zu queries + 1 batch): %zu errors, %zu differences\n", threads, rounds, in->n,
               errors, mismatches);
    free(ws);
    free(ids);
    free(expected);
    free(expected_n);
    free(expected_batch);
    free(expected_batch_n);
}

static int mode_soak(const char *model, const char *index, size_t k, const char *path, size_t threads, double seconds) {
    rmx_engine *e = NULL;
    if (!open_engine(model, index, &e)) return 2;
    instances in = read_instances(path);
    check_threads(e, &in, k, threads, 0, seconds);
    free_instances(&in);
    rmx_engine_free(e);
    return failures ? 1 : 0;
}

static int mode_threads(const char *model, const char *index, size_t k, const char *path, size_t threads, size_t rounds) {
    rmx_engine *e = NULL;
    if (!open_engine(model, index, &e)) return 2;
    instances in = read_instances(path);
    check_threads(e, &in, k, threads, rounds, 0);
    free_instances(&in);
    rmx_engine_free(e);
    return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- api */

static const char *DESCRIPTIONS =
    "{\"id\":\"P26\",\"name\":\"spouse\",\"description\":\"the person is married to the other person\","
    "\"head\":[\"person\"],\"tail\":[\"person\",\"spouse\"]}\n"
    "{\"id\":\"P19\",\"name\":\"place of birth\",\"description\":\"the person was born in the place\","
    "\"head\":[\"person\"],\"tail\":[\"city\"]}\n"
    "{\"id\":\"P108\",\"name\":\"employer\",\"description\":\"the person works for the organization\"}\n"
    "{\"id\":\"P17\",\"name\":\"country\",\"description\":\"the place is located in the country\","
    "\"head\":[\"place\"],\"tail\":[\"country\"]}\n";

static const char *SENTENCE = "Marie Curie married Pierre Curie in Paris.";

static rmx_instance inst(const char *text, size_t hs, size_t he, size_t ts, size_t te) {
    rmx_instance x = {text, hs, he, ts, te};
    return x;
}

/* Sentinel contents of the output buffers: a failing call must leave them as they are. */
#define SENTINEL 0xA5
static rmx_match out_buf[64];
static size_t n_buf[8];

static void poison(void) {
    memset(out_buf, SENTINEL, sizeof out_buf);
    memset(n_buf, SENTINEL, sizeof n_buf);
}

static int bytes_untouched(const void *p, size_t len) {
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != SENTINEL) return 0;
    return 1;
}

static int untouched(void) {
    return bytes_untouched(out_buf, sizeof out_buf) && bytes_untouched(n_buf, sizeof n_buf);
}

/* A failing query: expected status, message, and outputs left alone. */
#define QUERY_FAILS(engine, instance, k, want, needle)                               \
    do {                                                                             \
        poison();                                                                    \
        EXPECT(rmx_query((engine), (instance), (k), out_buf, n_buf), want, needle);  \
        CHECK(untouched(), "outputs written by a failing rmx_query");                \
    } while (0)

static void *fail_in_thread(void *arg) {
    /* A fresh thread has no last error; its failures do not touch other threads'. */
    CHECK(strcmp(rmx_last_error(), "") == 0, "fresh thread's last error is \"%s\"", rmx_last_error());
    EXPECT(rmx_engine_open(NULL, NULL, (rmx_engine **)arg), RMX_ERR_NULL_ARGUMENT, "index_dir");
    return NULL;
}

static void test_static_functions(void) {
    CHECK(rmx_abi_version() == RMX_ABI_VERSION, "abi %u vs header %u", rmx_abi_version(), (unsigned)RMX_ABI_VERSION);
    CHECK(rmx_version() != NULL && rmx_version()[0] != '\0', "rmx_version");
    for (int s = 0; s <= (int)RMX_ERR_DEVICE; s++) {
        const char *d = rmx_status_str((rmx_status)s);
        CHECK(d != NULL && d[0] != '\0' && strcmp(d, "unknown status") != 0, "status %d: %s", s, d ? d : "NULL");
        for (int t = 0; t < s; t++) CHECK(strcmp(d, rmx_status_str((rmx_status)t)) != 0, "statuses %d and %d", s, t);
    }
    CHECK(strcmp(rmx_status_str(RMX_OK), "ok") == 0, "RMX_OK is \"%s\"", rmx_status_str(RMX_OK));
    int unknown[] = {-1, (int)RMX_ERR_DEVICE + 1, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        CHECK(strcmp(rmx_status_str((rmx_status)unknown[i]), "unknown status") == 0, "status %d", unknown[i]);
    rmx_engine_free(NULL);
    CHECK(rmx_engine_relations(NULL) == 0, "relations of NULL");
}

static void test_build(const char *model, const char *workdir, const char *index) {
    char *desc = join(workdir, "descriptions.jsonl");
    write_file(desc, DESCRIPTIONS);
    char *missing = join(workdir, "no-such-file.jsonl");
    char *tmp = join(workdir, "scratch-index");

    EXPECT(rmx_index_build(model, NULL, index), RMX_ERR_NULL_ARGUMENT, "descriptions_jsonl");
    EXPECT(rmx_index_build(model, desc, NULL), RMX_ERR_NULL_ARGUMENT, "index_dir");
    EXPECT(rmx_index_build(model, missing, tmp), RMX_ERR_IO, "no-such-file.jsonl");
    EXPECT(rmx_index_build("/nonexistent/model", desc, tmp), RMX_ERR_MODEL, "/nonexistent/model");
    CHECK(access(tmp, F_OK) != 0, "a failed build left %s", tmp);

    char *empty = join(workdir, "empty.jsonl");
    write_file(empty, "\n\n");
    EXPECT(rmx_index_build(model, empty, tmp), RMX_ERR_INVALID_INPUT, "empty");
    char *bad = join(workdir, "bad.jsonl");
    write_file(bad, "not json\n{\"id\":\"P1\"}\n");
    EXPECT(rmx_index_build(model, bad, tmp), RMX_ERR_INVALID_INPUT, "bad.jsonl:2:");
    CHECK(access(tmp, F_OK) != 0, "a failed build left %s", tmp);

    /* Some records rejected: by default nothing is built (as the CLI, exit 1); with
     * RMX_BUILD_SKIP_INVALID the index is built from the others. */
    char *partial = join(workdir, "partial.jsonl");
    write_file(partial,
               "{\"id\":\"A\",\"description\":\"the person is married to the other person\"}\n"
               "oops\n"
               "{\"id\":\"A\",\"description\":\"duplicate\"}\n"
               "{\"id\":\"B\",\"name\":\"born in\",\"description\":\"the person was born in the place\"}\n");
    EXPECT(rmx_index_build(model, partial, tmp), RMX_ERR_REJECTED, "partial.jsonl:2:");
    CHECK(strstr(rmx_last_error(), "2 record(s) rejected; nothing was built") && strstr(rmx_last_error(), "partial.jsonl:3: duplicate"),
          "rejection report: %s", rmx_last_error());
    CHECK(access(tmp, F_OK) != 0, "an all-or-nothing build with rejected records left %s", tmp);
    rmx_build_options skip = {RMX_PRECISION_F32, RMX_SEARCH_AUTO, 0, RMX_BUILD_SKIP_INVALID};
    EXPECT(rmx_index_build_with(model, partial, tmp, &skip), RMX_ERR_REJECTED, "partial.jsonl:2:");
    CHECK(strstr(rmx_last_error(), "2 record(s) rejected; the index was built from the other 2") &&
              strstr(rmx_last_error(), "partial.jsonl:3: duplicate"),
          "rejection report: %s", rmx_last_error());
    rmx_engine *e = NULL;
    EXPECT(rmx_engine_open(model, tmp, &e), RMX_OK, NULL);
    CHECK(rmx_engine_relations(e) == 2, "partial index holds %zu relations", rmx_engine_relations(e));
    rmx_engine_free(e);
    /* A rebuild with a rejected record leaves the existing index as it was. */
    size_t before_len, after_len;
    char *data = join(tmp, "index.rmx");
    unsigned char *before = read_file(data, &before_len);
    EXPECT(rmx_index_build(model, partial, tmp), RMX_ERR_REJECTED, "partial.jsonl:3: duplicate");
    unsigned char *after = read_file(data, &after_len);
    CHECK(before_len == after_len && memcmp(before, after, before_len) == 0, "a refused rebuild changed the index");
    free(before), free(after), free(data);

    /* Options. */
    rmx_build_options o = {7, RMX_SEARCH_AUTO, 0, 0};
    EXPECT(rmx_index_build_with(model, desc, tmp, &o), RMX_ERR_INVALID_ARGUMENT, "precision");
    o = (rmx_build_options){RMX_PRECISION_F32, 9, 0, 0};
    EXPECT(rmx_index_build_with(model, desc, tmp, &o), RMX_ERR_INVALID_ARGUMENT, "search");
    o = (rmx_build_options){RMX_PRECISION_F32, RMX_SEARCH_AUTO, 0, 2};
    EXPECT(rmx_index_build_with(model, desc, tmp, &o), RMX_ERR_INVALID_ARGUMENT, "flags");
    o = (rmx_build_options){RMX_PRECISION_F16, RMX_SEARCH_HNSW, 2, 0};
    EXPECT(rmx_index_build_with(model, desc, tmp, &o), RMX_OK, NULL); /* replaces the partial one */
    EXPECT(rmx_index_verify(tmp), RMX_OK, NULL);
    e = NULL;
    EXPECT(rmx_engine_open(model, tmp, &e), RMX_OK, NULL);
    CHECK(rmx_engine_relations(e) == 4, "f16/hnsw index holds %zu relations", rmx_engine_relations(e));
    float min_score = 0.0f;
    EXPECT(rmx_engine_min_score(e, &min_score), RMX_OK, NULL);
    CHECK(isinf(min_score) && min_score < 0, "an uncalibrated index has min score -INFINITY, not %g", (double)min_score);
    EXPECT(rmx_engine_min_score(e, NULL), RMX_ERR_NULL_ARGUMENT, "out");
    EXPECT(rmx_engine_min_score(NULL, &min_score), RMX_ERR_NULL_ARGUMENT, "engine");
    rmx_instance x = inst(SENTENCE, 0, 11, 20, 32);
    poison();
    EXPECT(rmx_query(e, &x, 2, out_buf, n_buf), RMX_OK, NULL);
    CHECK(n_buf[0] == 2, "f16/hnsw query gave %zu matches", n_buf[0]);
    rmx_engine_free(e);
    EXPECT(rmx_index_build_with(model, desc, tmp, NULL), RMX_OK, NULL);

    /* A destination that is not an index is never replaced. */
    char *occupied = join(workdir, "occupied");
    write_file(occupied, "precious");
    EXPECT(rmx_index_build(model, desc, occupied), RMX_ERR_IO, "occupied");
    size_t len;
    unsigned char *kept = read_file(occupied, &len);
    CHECK(len == 8 && memcmp(kept, "precious", 8) == 0, "occupied destination was changed");
    free(kept);

    /* NULL model_dir is the default model ($RMX_MODEL names MODEL in these tests). */
    EXPECT(rmx_index_build(NULL, desc, index), RMX_OK, NULL);
    EXPECT(rmx_index_verify(index), RMX_OK, NULL);

    free(desc), free(missing), free(tmp), free(empty), free(bad), free(partial), free(occupied);
}

static void test_open(const char *model, const char *other_model, const char *workdir, const char *index) {
    rmx_engine *const sentinel = (rmx_engine *)(uintptr_t)0x1234;
    rmx_engine *e = sentinel;
    char *missing = join(workdir, "no-such-index");
    EXPECT(rmx_engine_open(model, NULL, &e), RMX_ERR_NULL_ARGUMENT, "index_dir");
    EXPECT(rmx_engine_open(model, index, NULL), RMX_ERR_NULL_ARGUMENT, "out");
    EXPECT(rmx_engine_open(model, missing, &e), RMX_ERR_IO, "no-such-index");
    EXPECT(rmx_engine_open("/nonexistent/model", index, &e), RMX_ERR_MODEL, "/nonexistent/model");
    EXPECT(rmx_engine_open(other_model, index, &e), RMX_ERR_MODEL_MISMATCH, "rebuild the index");
    EXPECT(rmx_engine_open_on(model, index, 7, &e), RMX_ERR_INVALID_ARGUMENT, "RMX_DEVICE_CUDA");
    CHECK(e == sentinel, "a failed open wrote *out");
    rmx_engine *on_cpu = NULL;
    EXPECT(rmx_engine_open_on(model, index, RMX_DEVICE_CPU, &on_cpu), RMX_OK, NULL);
    CHECK(on_cpu != NULL && rmx_engine_relations(on_cpu) > 0, "an engine on the CPU answers");
    rmx_engine_free(on_cpu);
    /* Without a GPU, a driver or a CUDA build, the device is refused with one line saying why. */
    rmx_engine *on_gpu = sentinel;
    rmx_status gpu = rmx_engine_open_on(model, index, RMX_DEVICE_CUDA, &on_gpu);
    if (gpu == RMX_OK) {
        rmx_engine_free(on_gpu);
    } else {
        CHECK(gpu == RMX_ERR_DEVICE, "RMX_DEVICE_CUDA returned %d (%s)", (int)gpu, rmx_status_str(gpu));
        CHECK(on_gpu == sentinel, "a failed open wrote *out");
        CHECK(strstr(rmx_last_error(), "CUDA") != NULL && strchr(rmx_last_error(), '\n') == NULL, "one line naming CUDA");
    }
    EXPECT(rmx_index_verify(NULL), RMX_ERR_NULL_ARGUMENT, "index_dir");
    EXPECT(rmx_index_verify(missing), RMX_ERR_IO, "no-such-index");

    struct {
        enum edit edit;
        const char *name;
        rmx_status open, verify;
        const char *needle;
    } cases[] = {
        {FLIP_HEADER, "flip-header", RMX_ERR_INDEX_CORRUPT, RMX_ERR_INDEX_CORRUPT, "checksum"},
        {FLIP_META, "flip-meta", RMX_ERR_INDEX_CORRUPT, RMX_ERR_INDEX_CORRUPT, "meta"},
        {TRUNCATE, "truncated", RMX_ERR_INDEX_CORRUPT, RMX_ERR_INDEX_CORRUPT, "truncated"},
        {NOT_AN_INDEX, "not-an-index", RMX_ERR_INDEX_CORRUPT, RMX_ERR_INDEX_CORRUPT, "magic"},
        {NEWER_VERSION, "newer", RMX_ERR_INDEX_VERSION, RMX_ERR_INDEX_VERSION, "version 99"},
        /* Opening does not read the vectors (O(1) in their size); verify does. */
        {FLIP_VECTORS, "flip-vectors", RMX_OK, RMX_ERR_INDEX_CORRUPT, "vectors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = damaged_copy(workdir, index, cases[i].name, cases[i].edit);
        e = sentinel;
        EXPECT(rmx_engine_open(model, dir, &e), cases[i].open, cases[i].needle);
        if (cases[i].open == RMX_OK) {
            CHECK(e != sentinel, "%s: no engine", cases[i].name);
            rmx_engine_free(e);
        }
        EXPECT(rmx_index_verify(dir), cases[i].verify, cases[i].needle);
        free(dir);
    }
    e = sentinel;
    EXPECT(rmx_engine_open(model, missing, &e), RMX_ERR_IO, NULL);
    CHECK(e == sentinel, "*out written by a failing rmx_engine_open");
    free(missing);
}

static void test_queries(const char *model, const char *index) {
    rmx_engine *e = NULL;
    EXPECT(rmx_engine_open(model, index, &e), RMX_OK, NULL);
    if (!e) return;
    CHECK(rmx_engine_relations(e) == 4, "%zu relations", rmx_engine_relations(e));
    rmx_instance good = inst(SENTENCE, 0, 11, 20, 32);

    /* NULL arguments. */
    QUERY_FAILS(NULL, &good, 3, RMX_ERR_NULL_ARGUMENT, "engine");
    QUERY_FAILS(e, NULL, 3, RMX_ERR_NULL_ARGUMENT, "instance");
    poison();
    EXPECT(rmx_query(e, &good, 3, NULL, n_buf), RMX_ERR_NULL_ARGUMENT, "out");
    EXPECT(rmx_query(e, &good, 3, out_buf, NULL), RMX_ERR_NULL_ARGUMENT, "n_out");
    CHECK(untouched(), "outputs written by a failing rmx_query");
    rmx_instance x = inst(NULL, 0, 11, 20, 32);
    QUERY_FAILS(e, &x, 3, RMX_ERR_NULL_ARGUMENT, "instance.text");

    /* Invalid arguments. */
    QUERY_FAILS(e, &good, 0, RMX_ERR_INVALID_ARGUMENT, "k is 0");
    x = inst(SENTENCE, 5, 5, 20, 32); /* empty head */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "head span");
    x = inst(SENTENCE, 11, 0, 20, 32); /* start > end */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "head span");
    x = inst(SENTENCE, 0, 11, 20, 999); /* beyond the text */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "tail span");
    x = inst(SENTENCE, 0, 11, SIZE_MAX - 1, SIZE_MAX);
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "tail span");
    x = inst(SENTENCE, 0, 11, 6, 19); /* overlap */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "overlap");
    x = inst(SENTENCE, 0, 11, 0, 11); /* the same span */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "overlap");
    x = inst(SENTENCE, 0, 11, 11, 12); /* whitespace only */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "whitespace");
    const char *zoe = "Zo\xc3\xab Saldana was born in Passaic.";
    x = inst(zoe, 0, 3, 25, 32); /* ends inside the two bytes of e-diaeresis */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "character boundaries");
    x = inst(zoe, 0, 4, 25, 32); /* the whole character: fine */
    poison();
    EXPECT(rmx_query(e, &x, 3, out_buf, n_buf), RMX_OK, NULL);
    x = inst("Marie \xff married Pierre.", 0, 5, 16, 22);
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "UTF-8");
    char *long_text = malloc(8 * 200 + 1);
    long_text[0] = '\0';
    for (int i = 0; i < 200; i++) strcat(long_text, "married ");
    x = inst(long_text, 0, 7, 8, 15); /* more tokens than the model's positions */
    QUERY_FAILS(e, &x, 3, RMX_ERR_INVALID_ARGUMENT, "tokens long");
    free(long_text);

    /* Good queries: best first, n_out = min(k, relations), the rest untouched. */
    poison();
    EXPECT(rmx_query(e, &good, 3, out_buf, n_buf), RMX_OK, NULL);
    CHECK(n_buf[0] == 3, "n_out %zu", n_buf[0]);
    const char *first_id = out_buf[0].id;
    for (size_t j = 0; j < 3; j++) {
        rmx_match *m = &out_buf[j];
        CHECK(m->id && m->name && m->id[0] && m->name[0], "match %zu strings", j);
        CHECK(j == 0 || m->score <= out_buf[j - 1].score, "scores not descending at %zu", j);
        /* The zero-training default's part weights (model/zero_shot.rs): 0.5, 0.2, 0.3. */
        float recomposed = 0.5f * m->context + 0.2f * m->head + 0.3f * m->tail;
        CHECK(recomposed - m->score < 1e-4f && m->score - recomposed < 1e-4f, "score %g vs parts %g", m->score,
              recomposed);
    }
    CHECK(bytes_untouched(&out_buf[3], sizeof(rmx_match)), "entry past n_out written");
    poison();
    EXPECT(rmx_query(e, &good, 10, out_buf, n_buf), RMX_OK, NULL);
    CHECK(n_buf[0] == 4, "k = 10 > 4 relations: n_out %zu", n_buf[0]);
    CHECK(bytes_untouched(&out_buf[4], sizeof(rmx_match)), "entry past n_out written");
    CHECK(out_buf[0].id == first_id, "the engine's strings move between calls");
    /* A huge k is every relation (the caller promises that much room; 4 entries are used). */
    poison();
    EXPECT(rmx_query(e, &good, SIZE_MAX, out_buf, n_buf), RMX_OK, NULL);
    CHECK(n_buf[0] == 4, "k = SIZE_MAX: n_out %zu", n_buf[0]);
    /* Head and tail in the other order in the text. */
    x = inst(SENTENCE, 20, 32, 0, 11);
    poison();
    EXPECT(rmx_query(e, &x, 1, out_buf, n_buf), RMX_OK, NULL);
    CHECK(n_buf[0] == 1, "n_out %zu", n_buf[0]);

    /* Batches: all or nothing. */
    rmx_instance batch[3] = {good, inst(SENTENCE, 0, 11, 36, 41), inst("Pierre Curie worked for the Sorbonne.", 0, 12, 28, 36)};
    poison();
    EXPECT(rmx_query_batch(NULL, batch, 3, 2, out_buf, n_buf), RMX_ERR_NULL_ARGUMENT, "engine");
    EXPECT(rmx_query_batch(e, NULL, 3, 2, out_buf, n_buf), RMX_ERR_NULL_ARGUMENT, "instances");
    EXPECT(rmx_query_batch(e, batch, 3, 2, NULL, n_buf), RMX_ERR_NULL_ARGUMENT, "out");
    EXPECT(rmx_query_batch(e, batch, 3, 2, out_buf, NULL), RMX_ERR_NULL_ARGUMENT, "n_out");
    EXPECT(rmx_query_batch(e, batch, 3, 0, out_buf, n_buf), RMX_ERR_INVALID_ARGUMENT, "k is 0");
    EXPECT(rmx_query_batch(e, batch, 3, SIZE_MAX, out_buf, n_buf), RMX_ERR_INVALID_ARGUMENT, "overflows");
    EXPECT(rmx_query_batch(e, NULL, 0, 2, NULL, NULL), RMX_OK, NULL); /* n = 0: nothing to do */
    CHECK(untouched(), "outputs written by a failing rmx_query_batch");
    rmx_instance bad_batch[3] = {good, good, inst(SENTENCE, 0, 11, 5, 20)};
    bad_batch[1].text = NULL;
    EXPECT(rmx_query_batch(e, bad_batch, 3, 2, out_buf, n_buf), RMX_ERR_NULL_ARGUMENT, "instances[1].text");
    bad_batch[1] = good;
    EXPECT(rmx_query_batch(e, bad_batch, 3, 2, out_buf, n_buf), RMX_ERR_INVALID_ARGUMENT, "instances[2]: ");
    CHECK(untouched(), "outputs written by a failing rmx_query_batch");

    poison();
    EXPECT(rmx_query_batch(e, batch, 3, 5, out_buf, n_buf), RMX_OK, NULL);
    rmx_match single[5];
    size_t n_single = 0;
    for (size_t i = 0; i < 3; i++) {
        CHECK(n_buf[i] == 4, "batch n_out[%zu] = %zu", i, n_buf[i]);
        CHECK(bytes_untouched(&out_buf[i * 5 + 4], sizeof(rmx_match)), "batch entry past n_out[%zu] written", i);
        EXPECT(rmx_query(e, &batch[i], 5, single, &n_single), RMX_OK, NULL);
        CHECK(n_single == n_buf[i], "batch and single sizes differ for %zu", i);
        for (size_t j = 0; j < n_single && j < n_buf[i]; j++) {
            rmx_match *b = &out_buf[i * 5 + j];
            CHECK(b->id == single[j].id, "batch and single rank differ: instance %zu rank %zu", i, j);
            float d = b->score - single[j].score;
            CHECK(d < 1e-5f && d > -1e-5f, "batch %g vs single %g", b->score, single[j].score);
        }
    }
    CHECK(bytes_untouched(&n_buf[3], sizeof n_buf[3]), "n_out[3] written");

    /* Strings stay valid (and the same) until the engine is freed. */
    const char *id = out_buf[0].id, *name = out_buf[0].name;
    char *id_copy = strdup(id), *name_copy = strdup(name);
    for (int i = 0; i < 3; i++) EXPECT(rmx_query(e, &batch[i % 3], 4, single, &n_single), RMX_OK, NULL);
    CHECK(strcmp(id, id_copy) == 0 && strcmp(name, name_copy) == 0, "strings changed: %s %s", id, name);
    free(id_copy);
    free(name_copy);

    /* The last error is per thread. */
    EXPECT(rmx_query(e, &good, 0, out_buf, n_buf), RMX_ERR_INVALID_ARGUMENT, "k is 0");
    rmx_engine *unused = NULL;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fail_in_thread, &unused) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(strstr(rmx_last_error(), "k is 0") != NULL, "another thread's failure replaced this thread's error");
    /* A success leaves it unchanged. */
    EXPECT(rmx_query(e, &good, 1, out_buf, n_buf), RMX_OK, NULL);
    CHECK(strstr(rmx_last_error(), "k is 0") != NULL, "a success changed the last error");

    /* Concurrency: 8 threads, one engine. */
    instances in = {3, batch, NULL};
    check_threads(e, &in, 4, 8, 2, 0);
    rmx_engine_free(e);
}

static int mode_api(const char *model, const char *other_model, const char *workdir) {
    pthread_t t;
    rmx_engine *unused = NULL;
    CHECK(pthread_create(&t, NULL, fail_in_thread, &unused) == 0, "pthread_create");
    pthread_join(t, NULL);
    char *index = join(workdir, "index");
    test_static_functions();
    test_build(model, workdir, index);
    test_open(model, other_model, workdir, index);
    test_queries(model, index);
    free(index);
    printf("capi_test api: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

static int mode_status(const char *model, const char *index) {
    rmx_engine *e = NULL;
    rmx_status s = rmx_engine_open(model, index, &e);
    printf("open\t%d\t%s\n", (int)s, s == RMX_OK ? "" : rmx_last_error());
    if (s != RMX_OK) return 0;
    rmx_instance x = inst(SENTENCE, 0, 11, 20, 32);
    rmx_match out[2];
    size_t n[1];
    s = rmx_query(e, &x, 2, out, n);
    printf("query\t%d\t%s\n", (int)s, s == RMX_OK ? "" : rmx_last_error());
    s = rmx_query_batch(e, &x, 1, 2, out, n);
    printf("batch\t%d\t%s\n", (int)s, s == RMX_OK ? "" : rmx_last_error());
    rmx_engine_free(e);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "api") == 0) return mode_api(argv[2], argv[3], argv[4]);
    if (argc == 7 && strcmp(argv[1], "query") == 0)
        return mode_query(argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5], argv[6]);
    if (argc == 4 && strcmp(argv[1], "status") == 0) return mode_status(argv[2], argv[3]);
    if (argc == 8 && strcmp(argv[1], "soak") == 0)
        return mode_soak(argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5], strtoul(argv[6], NULL, 10), strtod(argv[7], NULL));
    if (argc == 8 && strcmp(argv[1], "threads") == 0)
        return mode_threads(argv[2], argv[3], strtoul(argv[4], NULL, 10), argv[5], strtoul(argv[6], NULL, 10),
                            strtoul(argv[7], NULL, 10));
    fprintf(stderr, "usage: capi_test api MODEL OTHER_MODEL WORKDIR\n"
                    "       capi_test query MODEL INDEX K INSTANCES single|batch|both\n"
                    "       capi_test status MODEL INDEX\n"
                    "       capi_test threads MODEL INDEX K INSTANCES THREADS ROUNDS\n"
                    "       capi_test soak MODEL INDEX K INSTANCES THREADS SECONDS\n");
    return 2;
}
