/*
 * librmx example: build a relation index from a few descriptions, then ask which relation
 * holds between two entities of a sentence.
 *
 *   cargo build --release
 *   cc examples/c/rmx_example.c -Iinclude target/release/librmx.a -lpthread -ldl -lm -o rmx_example
 *   ./rmx_example                 # the default model (scripts/fetch-model.sh installs it)
 *   ./rmx_example MODEL_DIR       # another model
 */
#include "rmx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failure of `what` and returns 1. */
static int fail(const char *what, rmx_status status) {
    fprintf(stderr, "%s: %s: %s\n", what, rmx_status_str(status), rmx_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : NULL; /* NULL: the default model */
    if (rmx_abi_version() != RMX_ABI_VERSION) {
        fprintf(stderr, "librmx ABI %u, header ABI %u\n", rmx_abi_version(), (unsigned)RMX_ABI_VERSION);
        return 1;
    }

    /* 1. Relation descriptions, one JSON object per line. */
    char dir[] = "/tmp/rmx_example.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char descriptions[64], index[64];
    snprintf(descriptions, sizeof descriptions, "%s/descriptions.jsonl", dir);
    snprintf(index, sizeof index, "%s/index", dir);
    FILE *f = fopen(descriptions, "w");
    if (!f) {
        perror(descriptions);
        return 1;
    }
    fputs("{\"id\":\"P26\",\"name\":\"spouse\",\"description\":\"the person is married to the other person\","
          "\"head\":[\"person\"],\"tail\":[\"person\",\"spouse\"]}\n"
          "{\"id\":\"P19\",\"name\":\"place of birth\",\"description\":\"the person was born in the place\","
          "\"head\":[\"person\"],\"tail\":[\"city\",\"place\"]}\n"
          "{\"id\":\"P108\",\"name\":\"employer\",\"description\":\"the person works for the organization\","
          "\"head\":[\"person\"],\"tail\":[\"organization\",\"company\"]}\n",
          f);
    fclose(f);

    /* 2. Encode them into an index (done once; the index is reused across runs). */
    rmx_status s = rmx_index_build(model, descriptions, index);
    if (s != RMX_OK) return fail("rmx_index_build", s);

    /* 3. Open model + index, and query. Entity spans are byte offsets [start, end). */
    rmx_engine *engine = NULL;
    s = rmx_engine_open(model, index, &engine);
    if (s != RMX_OK) return fail("rmx_engine_open", s);

    const char *text = "Marie Curie was born in Warsaw.";
    rmx_instance query = {text, 0, 11, 24, 30}; /* head "Marie Curie", tail "Warsaw" */
    rmx_match matches[3];
    size_t n = 0;
    s = rmx_query(engine, &query, 3, matches, &n);
    if (s != RMX_OK) {
        rmx_engine_free(engine);
        return fail("rmx_query", s);
    }
    printf("%s\n  head: %.*s\n  tail: %.*s\n", text, (int)(query.head_end - query.head_start), text + query.head_start,
           (int)(query.tail_end - query.tail_start), text + query.tail_start);
    for (size_t i = 0; i < n; i++)
        printf("  %zu. %-5s %-15s score %.4f (context %.4f, head %.4f, tail %.4f)\n", i + 1, matches[i].id,
               matches[i].name, matches[i].score, matches[i].context, matches[i].head, matches[i].tail);

    /* matches[i].id and .name belong to the engine: use them before freeing it. */
    rmx_engine_free(engine);
    printf("index kept in %s\n", index);
    return 0;
}
