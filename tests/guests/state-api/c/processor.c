/* The state-api script (see ../README.md) in C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"

static weir_store s;

const char *weir_init(const weir_config *config) {
    (void)config;
    return weir_store_open("s", &s);
}

#define ARGS_MAX 16

/* A growing text buffer for an answer. */
typedef struct {
    char *ptr;
    size_t len, cap;
} text;

static void put(text *t, const void *bytes, size_t n) {
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->ptr = realloc(t->ptr, t->cap);
        if (!t->ptr) abort();
    }
    memcpy(t->ptr + t->len, bytes, n);
    t->len += n;
    t->ptr[t->len] = 0;
}

static void put_str(text *t, const char *s) { put(t, s, strlen(s)); }

static void answer(weir_output *out, text *t) {
    weir_emit(out, (weir_bytes){(const uint8_t *)(t->ptr ? t->ptr : ""), t->len});
    free(t->ptr);
}

static void scan_entry(weir_bytes key, weir_bytes value, void *ctx) {
    text *t = ctx;
    if (t->len) put_str(t, ",");
    put(t, key.ptr, key.len);
    put_str(t, "=");
    put(t, value.ptr, value.len);
}

const char *weir_process(const weir_record *record, weir_output *out) {
    char line[1024];
    size_t n = record->value.len < sizeof line - 1 ? record->value.len : sizeof line - 1;
    memcpy(line, record->value.ptr, n);
    line[n] = 0;
    char *argv[ARGS_MAX];
    int argc = 0;
    for (char *tok = strtok(line, " "); tok && argc < ARGS_MAX; tok = strtok(NULL, " ")) argv[argc++] = tok;
    if (argc == 0) return "empty command";
    const char *op = argv[0];
    text t = {0};
    const char *err = NULL;
    if (!strcmp(op, "set") && argc == 3) {
        if ((err = weir_store_set(s, weir_str(argv[1]), weir_str(argv[2])))) return err;
        put_str(&t, "ok");
    } else if (!strcmp(op, "get") && argc == 2) {
        weir_owned v;
        if (weir_store_get(s, weir_str(argv[1]), &v)) {
            put(&t, v.ptr, v.len);
            weir_owned_free(&v);
        } else {
            put_str(&t, "none");
        }
    } else if (!strcmp(op, "many")) {
        weir_bytes keys[ARGS_MAX];
        weir_owned values[ARGS_MAX];
        bool found[ARGS_MAX];
        for (int i = 1; i < argc; i++) keys[i - 1] = weir_str(argv[i]);
        weir_store_get_many(s, keys, (size_t)(argc - 1), values, found);
        for (int i = 0; i < argc - 1; i++) {
            if (i) put_str(&t, ",");
            if (found[i]) {
                put(&t, values[i].ptr, values[i].len);
                weir_owned_free(&values[i]);
            } else {
                put_str(&t, "none");
            }
        }
    } else if (!strcmp(op, "del") && argc == 2) {
        if ((err = weir_store_delete(s, weir_str(argv[1])))) return err;
        put_str(&t, "ok");
    } else if (!strcmp(op, "inc") && argc == 3) {
        int64_t now;
        if ((err = weir_store_increment(s, weir_str(argv[1]), strtoll(argv[2], NULL, 10), &now))) return err;
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)now);
        put_str(&t, num);
    } else if (!strcmp(op, "scan") && argc == 4) {
        weir_bytes end = weir_str(argv[2]);
        weir_store_scan(s, weir_str(argv[1]), strcmp(argv[2], "-") ? &end : NULL, (uint32_t)strtoul(argv[3], NULL, 10),
                        scan_entry, &t);
    } else if (!strcmp(op, "timer") && argc == 3) {
        if ((err = weir_set_timer(weir_str(argv[1]), strtoll(argv[2], NULL, 10), WEIR_EVENT_TIME))) return err;
        put_str(&t, "ok");
    } else if (!strcmp(op, "fail") && argc == 3) {
        if ((err = weir_store_set(s, weir_str(argv[1]), weir_str(argv[2])))) return err;
        return "failed on purpose";
    } else if (!strcmp(op, "big") && argc == 3) {
        size_t size = strtoul(argv[2], NULL, 10);
        uint8_t *big = malloc(size + 1);
        if (!big) abort();
        memset(big, 'x', size);
        err = weir_store_set(s, weir_str(argv[1]), (weir_bytes){big, size});
        free(big);
        if (err) return err;
        put_str(&t, "ok");
    } else if (!strcmp(op, "wm") && argc == 1) {
        int64_t ms;
        put_str(&t, weir_watermark(&ms) ? "some" : "none");
    } else {
        return weir_errorf("unknown command %s", op);
    }
    answer(out, &t);
    return NULL;
}

const char *weir_on_timer(const weir_timer *timer, weir_output *out) {
    text t = {0};
    put_str(&t, "fired ");
    put(&t, timer->key.ptr, timer->key.len);
    char at[32];
    snprintf(at, sizeof at, " %lld", (long long)timer->at);
    put_str(&t, at);
    answer(out, &t);
    return NULL;
}
